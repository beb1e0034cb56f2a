"""The contact admin API's request bodies: strict, so a misspelt field is an error, not a silent default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_BULK = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonIn(_Strict):
    nationalIdentityNumber: str = Field(pattern=r"^\d{11}$")
    name: str | None = Field(default=None, max_length=300)
    emailAddress: str | None = Field(default=None, max_length=254)
    mobileNumber: str | None = Field(default=None, max_length=20)
    reserved: bool = False


class RoleHolderIn(_Strict):
    nationalIdentityNumber: str = Field(pattern=r"^\d{11}$")
    name: str | None = Field(default=None, max_length=300)
    emailAddress: str | None = Field(default=None, max_length=254)
    mobileNumber: str | None = Field(default=None, max_length=20)


class RoleIn(_Strict):
    name: str = Field(min_length=1, max_length=100)
    resources: list[str] = Field(default_factory=list, max_length=500)
    holders: list[RoleHolderIn] = Field(default_factory=list, max_length=2000)


class OrganizationIn(_Strict):
    organizationNumber: str = Field(pattern=r"^\d{9}$")
    name: str | None = Field(default=None, max_length=300)
    emailAddresses: list[str] = Field(default_factory=list, max_length=100)
    mobileNumbers: list[str] = Field(default_factory=list, max_length=100)
    roles: list[RoleIn] = Field(default_factory=list, max_length=100)
    parentOrganizationNumber: str | None = Field(
        default=None,
        pattern=r"^\d{9}$",
        description="A subunit's main unit: subscriptions to it with includeSubunits also get this organisation's events",
    )


class PersonsIn(_Strict):
    persons: list[PersonIn] = Field(max_length=MAX_BULK)


class OrganizationsIn(_Strict):
    organizations: list[OrganizationIn] = Field(max_length=MAX_BULK)
