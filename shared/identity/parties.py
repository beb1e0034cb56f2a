"""Herald's identities: ``org:<organisation number>``, ``person:<national identity number>``, ``system:<id>``.

Norwegian organisation numbers (9 digits) and national identity numbers (11 digits, including
D-numbers) carry mod-11 check digits; a number whose check digits are wrong is refused, so a typo
cannot silently address another party.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
_NIN_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_NIN_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_SYSTEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PartyKind(StrEnum):
    ORG = "org"
    PERSON = "person"
    SYSTEM = "system"


class InvalidIdentity(ValueError):
    """The value is not a Herald identity; the message says what is wrong."""


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11
    check = 11 - remainder
    if check == 11:
        return 0
    if check == 10:
        return None  # no valid check digit exists for this number
    return check


def valid_organisation_number(number: str) -> bool:
    return len(number) == 9 and number.isdigit() and _mod11(number[:8], _ORG_WEIGHTS) == int(number[8])


def valid_national_identity_number(number: str) -> bool:
    if len(number) != 11 or not number.isdigit():
        return False
    return _mod11(number[:9], _NIN_WEIGHTS_1) == int(number[9]) and _mod11(number[:10], _NIN_WEIGHTS_2) == int(
        number[10]
    )


def organisation_number_with_check_digit(first_eight: str) -> str | None:
    """Completes eight digits into a valid organisation number (None when no check digit exists)."""
    check = _mod11(first_eight, _ORG_WEIGHTS)
    return None if check is None else f"{first_eight}{check}"


@dataclass(frozen=True)
class Party:
    kind: PartyKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


def parse_party(value: str) -> Party:
    kind, separator, identifier = value.partition(":")
    if not separator or not identifier:
        raise InvalidIdentity(f"'{value}' is not an identity: use org:<9 digits>, person:<11 digits> or system:<id>")
    if kind == PartyKind.ORG:
        if not valid_organisation_number(identifier):
            raise InvalidIdentity(f"'{identifier}' is not a valid organisation number (9 digits, mod-11 check digit)")
        return Party(PartyKind.ORG, identifier)
    if kind == PartyKind.PERSON:
        if not valid_national_identity_number(identifier):
            raise InvalidIdentity(
                f"'{identifier}' is not a valid national identity number (11 digits, two check digits)"
            )
        return Party(PartyKind.PERSON, identifier)
    if kind == PartyKind.SYSTEM:
        if not _SYSTEM_ID.match(identifier):
            raise InvalidIdentity("a system id is 1-128 letters, digits, '.', '_' or '-'")
        return Party(PartyKind.SYSTEM, identifier)
    raise InvalidIdentity(f"'{kind}' is not an identity kind: use org, person or system")
