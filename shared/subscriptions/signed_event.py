"""What a push to an Event Grid topic signs, so that its receiver can check the signature.

A webhook or Service Bus receiver gets the very bytes Herald signed. Event Grid does not pass bytes on:
it takes the event's attributes and data and serializes them again for its subscribers. So such a push
is signed over the event in the JSON Canonicalization Scheme (RFC 8785, "JCS"), which any receiver can
rebuild from what it got: the event without the three extension attributes that carry the signature
(``SIGNATURE_EXTENSIONS``), canonicalized. Libraries for JCS exist for most languages.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The Standard Webhooks headers as CloudEvent extension attributes (lowercase letters and digits only).
SIGNATURE_EXTENSIONS = {
    "webhook-id": "webhookid",
    "webhook-timestamp": "webhooktimestamp",
    "webhook-signature": "webhooksignature",
}


def signed_content(body: bytes) -> bytes:
    """The event's JCS form, without the signature's extension attributes (what an Event Grid push signs)."""
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("the event is not a JSON object")
    unsigned = {name: value for name, value in event.items() if name not in SIGNATURE_EXTENSIONS.values()}
    return canonical_json(unsigned).encode("utf-8")


def canonical_json(value: Any) -> str:
    """RFC 8785: no whitespace, object members sorted by their names' UTF-16 code units, strings escaped as
    ECMAScript's JSON.stringify does, numbers as ECMAScript writes an IEEE 754 double."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**53 else _number(float(value))
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, dict):
        names = sorted(value, key=lambda name: name.encode("utf-16-be"))
        return (
            "{"
            + ",".join(f"{json.dumps(name, ensure_ascii=False)}:{canonical_json(value[name])}" for name in names)
            + "}"
        )
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _number(value: float) -> str:
    """ECMAScript's Number::toString for a finite double: Python's ``repr`` finds the same shortest digits
    that round-trip; only where the decimal point and the exponent go differs."""
    if not math.isfinite(value):
        raise ValueError("JSON has no NaN or Infinity")
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)  # value = 0.<digits> * 10**point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = (digits if k == 1 else f"{digits[0]}.{digits[1:]}") + f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text
