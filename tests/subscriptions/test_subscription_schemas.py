"""A field a PATCH can change is checked as a create checks it: the same verdict, the same words."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.api.subscription_schemas import SubscriptionPatch, SubscriptionRequest

RESOURCE = "urn:altinn:resource:example"
FIELDS: list[dict[str, Any]] = [
    {"endPoint": ""},
    {"endPoint": "ftp://example.com/x"},
    {"endPoint": "https://user:pw@example.com/"},
    {"endPoint": "https://example.com/#part"},
    {"endPoint": "https://example.com:99999/"},
    {"endPoint": "https://example.com/" + "x" * 2048},
    {"resourceFilter": ""},
    {"resourceFilter": "not a urn"},
    {"sourceFilter": "not a uri"},
    {"sourceFilter": "https://source.example/*"},
    {"subjectFilter": "*"},
    {"subjectFilter": ["org:991825827", "*"]},
    {"subjectFilter": ["person:1", "person:1", "person:2"]},
    {"subjectFilter": []},
    {"alternativeSubjectFilter": "/org/*"},
    {"alternativeSubjectFilter": "/org/991825827"},
    {"typeFilter": ["case.*", "case.*", "other"]},
    {"typeFilter": ["a", "*"]},
]


def verdict(model: type[SubscriptionRequest | SubscriptionPatch], body: dict[str, Any], field: str) -> Any:
    try:
        return model.model_validate(body).model_dump(by_alias=True)[field]
    except ValidationError as error:
        return sorted((e["loc"], e["msg"]) for e in error.errors() if e["loc"] and e["loc"][0] == field)


@pytest.mark.parametrize("given", FIELDS, ids=lambda given: repr(given)[:60])
def test_a_patched_field_is_checked_as_in_a_create(given: dict[str, Any]) -> None:
    [field] = given
    create = verdict(
        SubscriptionRequest, {"endPoint": "https://example.com/hook", "resourceFilter": RESOURCE} | given, field
    )
    patch = verdict(SubscriptionPatch, given, field)
    assert create == patch
    assert create != [], "a refusal names the field"
