"""Identities in token subjects: organisation and national identity numbers with mod-11 checks."""

from __future__ import annotations

import pytest

from shared.identity.parties import (
    InvalidIdentity,
    PartyKind,
    parse_party,
    valid_national_identity_number,
    valid_organisation_number,
)


@pytest.mark.parametrize("number", ["991825827", "974761076", "310000000"])
def test_valid_organisation_numbers(number):
    assert valid_organisation_number(number)
    assert parse_party(f"org:{number}").kind is PartyKind.ORG


@pytest.mark.parametrize("number", ["991825828", "99182582", "9918258270", "99182582a", "920000000"])
def test_invalid_organisation_numbers(number):
    assert not valid_organisation_number(number)
    with pytest.raises(InvalidIdentity, match="organisation number"):
        parse_party(f"org:{number}")


@pytest.mark.parametrize("number", ["01017012343", "01010000110", "01010012356"])
def test_valid_national_identity_numbers(number):
    assert valid_national_identity_number(number)
    assert str(parse_party(f"person:{number}")) == f"person:{number}"


@pytest.mark.parametrize("number", ["01017012345", "12345678901", "0101701234", "0101701234x"])
def test_invalid_national_identity_numbers(number):
    with pytest.raises(InvalidIdentity, match="national identity number"):
        parse_party(f"person:{number}")


@pytest.mark.parametrize(
    "value", ["991825827", "org", "org:", "robot:x", "system:", "system:has space", "system:" + "x" * 200]
)
def test_other_malformed_identities(value):
    with pytest.raises(InvalidIdentity):
        parse_party(value)


def test_system_identities():
    assert str(parse_party("system:skatteetaten.saksbehandling-1")) == "system:skatteetaten.saksbehandling-1"


async def test_a_token_whose_subject_is_not_an_identity_is_401(client, issuer, resource):
    for subject in ("org:991825828", "person:12345678901", "someone", "00000000-0000-0000-0000-000000000000"):
        response = await client.get(
            "/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read", sub=subject)
        )
        assert response.status_code == 401
        assert "not a Herald identity" in response.json()["detail"]
