"""Valid test identities: organisation and national identity numbers with correct check digits."""

from __future__ import annotations

import random

from shared.identity.parties import organisation_number_with_check_digit, valid_national_identity_number


def random_org() -> str:
    while True:
        number = organisation_number_with_check_digit(f"{random.randint(80_000_000, 99_999_999)}")
        if number is not None:
            return f"org:{number}"


def random_person() -> str:
    while True:
        day, month, year = random.randint(1, 28), random.randint(1, 12), random.randint(0, 99)
        candidate = f"{day:02d}{month:02d}{year:02d}{random.randint(0, 99999):05d}"
        if valid_national_identity_number(candidate):
            return f"person:{candidate}"
