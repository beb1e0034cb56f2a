"""The JSON Canonicalization Scheme (RFC 8785) that Event Grid pushes are signed in: the RFC's own
examples, and ECMAScript's number forms."""

from __future__ import annotations

import json

import pytest

from shared.subscriptions.signed_event import canonical_json, signed_content

# RFC 8785, section 3.2.2 and 3.2.3: the input and its canonical form.
RFC_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)


def test_the_rfc_example_canonicalizes_as_the_rfc_says():
    assert canonical_json(json.loads(RFC_INPUT)) == RFC_OUTPUT


@pytest.mark.parametrize(
    ("number", "written"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (2.0, "2"),
        (100, "100"),
        (0.1, "0.1"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (-4.5e300, "-4.5e+300"),
        (5e-324, "5e-324"),
        (9007199254740993, "9007199254740992"),  # beyond 2**53: as the double it reads as
    ],
)
def test_numbers_are_written_as_ecmascript_writes_them(number, written):
    assert canonical_json(number) == written


def test_members_sort_by_utf16_code_units_and_the_signature_extensions_are_left_out():
    # U+1F600 is a surrogate pair (D83D …), which sorts before U+FB01 in UTF-16 though not in code points.
    body = json.dumps(
        {
            "\ufb01": 1,
            "\U0001f600": 2,
            "b": [1.0, "x"],
            "webhookid": "m",
            "webhooksignature": "s",
            "webhooktimestamp": "1",
        }
    ).encode()
    assert signed_content(body).decode() == '{"b":[1,"x"],"\U0001f600":2,"\ufb01":1}'
