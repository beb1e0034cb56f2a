"""Who may publish, read, subscribe and receive.

A resource's policy names its publishers, its owners (who see every event of the resource) and
rules that let role holders read or subscribe to events about a party: an event's subject is the
party it concerns. A consumer holds roles for parties directly (a person for themself, an
organisation's role holders) or through delegations (an accounting firm acting for its clients).

Decisions are cached per (consumer, resource, subject, type, action), the subject included (the
anchor's cache omits it and leaks one party's decision to another), for a short time, and dropped
at once when any policy or role changes: every change bumps a version that each process checks
at most once a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.identity.parties import InvalidIdentity, parse_party
from shared.urns import HERALD_NAMESPACE, NOTIFICATIONS_URN, SUBSCRIPTIONS_URN

ANYONE = "*"
SELF_ROLE = "self"  # a rule role: the consumer is the event's subject


class Action(StrEnum):
    PUBLISH = "publish"
    READ = "read"
    SUBSCRIBE = "subscribe"


def _identity_or_anyone(value: str) -> str:
    if value == ANYONE:
        return value
    return str(parse_party(value))


class AccessRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(
        min_length=1, description="Roles granted the actions; 'self' means the consumer is the subject"
    )
    actions: list[Action] = Field(min_length=1)
    types: list[str] = Field(
        default_factory=list, description="Event types (a trailing * is a prefix); empty: all types"
    )

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if not role or len(role) > 64 or not role.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"'{role}' is not a role name (letters, digits, '-' and '_')")
        return roles

    @field_validator("actions")
    @classmethod
    def _actions(cls, actions: list[Action]) -> list[Action]:
        if Action.PUBLISH in actions:
            raise ValueError("publishing is granted by 'publishers', not by role rules")
        return actions

    @field_validator("types")
    @classmethod
    def _types(cls, types: list[str]) -> list[str]:
        for pattern in types:
            if not pattern or "*" in pattern[:-1]:
                raise ValueError(f"'{pattern}' is not an event type or a prefix ending in *")
        return types


class ResourcePolicy(BaseModel):
    """``PUT /api/v1/admin/policies/{resource}``."""

    model_config = ConfigDict(extra="forbid")

    publishers: list[str] = Field(default_factory=list, description="Identities that may publish ('*': any)")
    owners: list[str] = Field(default_factory=list, description="Identities that may read and subscribe to every event")
    rules: list[AccessRule] = Field(default_factory=list)

    @field_validator("publishers", "owners")
    @classmethod
    def _identities(cls, values: list[str]) -> list[str]:
        try:
            return [_identity_or_anyone(value) for value in values]
        except InvalidIdentity as error:
            raise ValueError(str(error)) from error


def _type_matches(patterns: Sequence[str], event_type: str | None) -> bool:
    """Whether a rule's type patterns cover the type asked about. A subscription asks about its type
    filter, which may be a prefix (``no.case.*``): it is covered only by a pattern that covers
    every type it can match."""
    if not patterns:
        return True
    if event_type is None:
        return False
    if event_type.endswith("*"):
        wanted = event_type[:-1]
        return any(p.endswith("*") and wanted.startswith(p[:-1]) for p in patterns)
    return any(event_type.startswith(p[:-1]) if p.endswith("*") else event_type == p for p in patterns)


def _listed(identities: Iterable[str], consumer: str) -> bool:
    return any(identity in (ANYONE, consumer) for identity in identities)


@dataclass(frozen=True)
class AccessRequest:
    consumer: str
    resource: str
    subject: str | None
    type: str | None
    action: Action


def policy_permits(policy: ResourcePolicy | None, request: AccessRequest, roles: frozenset[str]) -> bool:
    """Whether ``policy`` permits the request; ``roles`` are the roles the consumer holds for the subject."""
    if policy is None:
        return False
    if request.action is Action.PUBLISH:
        return _listed(policy.publishers, request.consumer)
    if _listed(policy.owners, request.consumer):
        return True
    if request.subject is None:
        return False
    held = roles | ({SELF_ROLE} if request.subject == request.consumer else frozenset())
    return any(
        request.action in rule.actions and _type_matches(rule.types, request.type) and held.intersection(rule.roles)
        for rule in policy.rules
    )


@dataclass(frozen=True)
class RoleGrant:
    party: str  # the party the role is held for (an organisation or a person)
    holder: str  # who holds it
    role: str
    delegated: bool = False  # granted by a delegation (the holder acts on the party's behalf)


class PolicyStore(Protocol):
    async def get(self, resource: str) -> ResourcePolicy | None: ...

    async def list(self, after: str | None, limit: int) -> tuple[list[tuple[str, ResourcePolicy]], str | None]:
        """At most ``limit`` (resource, policy) pairs after the key ``after``, in key order, and the
        key to go on from (None: no more). Reads one page, never the whole table."""
        ...

    async def put(self, resource: str, policy: ResourcePolicy) -> None: ...

    async def delete(self, resource: str) -> bool: ...


class RoleStore(Protocol):
    async def roles(self, holder: str, party: str) -> frozenset[str]: ...

    async def grants_of(self, holder: str) -> list[RoleGrant]: ...

    async def grant(self, grants: Sequence[RoleGrant]) -> None: ...

    async def revoke(self, grants: Sequence[RoleGrant]) -> None: ...


class VersionCounter(Protocol):
    """A number that changes whenever any policy or role changes (shared by every process)."""

    async def current(self) -> int: ...

    async def bump(self) -> int: ...


class DecisionUnavailable(RuntimeError):
    """No decision could be had (the external PDP did not answer): the caller retries later,
    nothing is decided by guessing."""


class DecisionPoint(Protocol):
    async def decide(self, requests: Sequence[AccessRequest]) -> list[bool]: ...


# Herald's own resources: consumers read the events about themselves.
BUILT_IN_POLICIES: Mapping[str, ResourcePolicy] = {
    SUBSCRIPTIONS_URN: ResourcePolicy(rules=[AccessRule(roles=[SELF_ROLE], actions=[Action.READ, Action.SUBSCRIBE])]),
}
NOTIFICATIONS_PREFIX = f"{NOTIFICATIONS_URN}:"


def is_herald_resource(resource: str) -> bool:
    # Herald's own namespace: only Herald writes there, whatever a policy or an external PDP says.
    # A URN's namespace identifier is case-insensitive (RFC 8141): URN:Herald: is the same namespace.
    return resource[: len(HERALD_NAMESPACE)].lower() == HERALD_NAMESPACE


def built_in_policy(resource: str) -> ResourcePolicy | None:
    if resource in BUILT_IN_POLICIES:
        return BUILT_IN_POLICIES[resource]
    if resource.startswith(NOTIFICATIONS_PREFIX):
        # A sender's notification status events, when its orders name no resource: the sender's own.
        return ResourcePolicy(owners=[resource[len(NOTIFICATIONS_PREFIX) :]])
    return None


class Reach(StrEnum):
    """How much of a resource's events an action reaches."""

    ALL = "all"  # an owner: every event
    SOME = "some"  # role rules: the events about parties the consumer holds a rule's role for (or itself)
    NONE = "none"


@dataclass(frozen=True)
class ResourceAccess:
    resource: str
    publish: bool
    read: Reach
    subscribe: Reach

    @property
    def any(self) -> bool:
        return self.publish or self.read is not Reach.NONE or self.subscribe is not Reach.NONE


def resource_access(consumer: str, resource: str, policy: ResourcePolicy, roles: frozenset[str]) -> ResourceAccess:
    """What ``policy`` lets ``consumer`` do at ``resource``; ``roles`` are the roles it holds for any party.

    A rule reaches some events when it names ``self`` (the events about the consumer) or a role the
    consumer holds for some party (the events about that party), as ``policy_permits`` decides per event."""
    owner = _listed(policy.owners, consumer)
    held = roles | {SELF_ROLE}

    def reach(action: Action) -> Reach:
        if owner:
            return Reach.ALL
        if any(action in rule.actions and held.intersection(rule.roles) for rule in policy.rules):
            return Reach.SOME
        return Reach.NONE

    return ResourceAccess(resource, _listed(policy.publishers, consumer), reach(Action.READ), reach(Action.SUBSCRIBE))


def herald_resources_of(consumer: str) -> list[str]:
    """Herald's own resources that concern ``consumer``: its subscriptions' events and its notifications' statuses."""
    return [SUBSCRIPTIONS_URN, f"{NOTIFICATIONS_PREFIX}{consumer}"]


def accessible_resources(
    consumer: str, policies: Iterable[tuple[str, ResourcePolicy]], grants: Iterable[RoleGrant]
) -> list[ResourceAccess]:
    """The resources ``consumer`` may publish to, or read or subscribe to at least some events of, by
    resource: Herald's own that concern it (their built-in policies) and those ``policies`` open to it.
    A stored policy of a resource with a built-in one is ignored, as the decision point ignores it."""
    roles = frozenset(grant.role for grant in grants)
    decided = {resource: built_in_policy(resource) for resource in herald_resources_of(consumer)}
    for resource, policy in policies:
        if built_in_policy(resource) is None:
            decided[resource] = policy
    found = (
        resource_access(consumer, resource, policy, roles) for resource, policy in decided.items() if policy is not None
    )
    return sorted((access for access in found if access.any), key=lambda access: access.resource)


class LocalDecisionPoint:
    """Decides from the policies and roles in Herald's own tables."""

    def __init__(self, policies: PolicyStore, roles: RoleStore) -> None:
        self._policies = policies
        self._roles = roles

    async def policy(self, resource: str) -> ResourcePolicy | None:
        return built_in_policy(resource) or await self._policies.get(resource)

    async def decide(self, requests: Sequence[AccessRequest]) -> list[bool]:
        resources = sorted({r.resource for r in requests})
        policies = dict(zip(resources, await asyncio.gather(*(self.policy(r) for r in resources)), strict=True))
        # Roles are looked up only where the policy alone cannot decide (not an owner, a subject,
        # role rules exist): at high fan-out to owners this costs no storage reads at all.
        pairs = sorted({(r.consumer, r.subject) for r in requests if _needs_roles(policies[r.resource], r)})
        found = await asyncio.gather(*(self._roles.roles(consumer, subject or "") for consumer, subject in pairs))
        held: dict[tuple[str, str | None], frozenset[str]] = dict(zip(pairs, found, strict=True))
        return [
            policy_permits(policies[r.resource], r, held.get((r.consumer, r.subject), frozenset())) for r in requests
        ]


def _needs_roles(policy: ResourcePolicy | None, request: AccessRequest) -> bool:
    return (
        policy is not None
        and request.action is not Action.PUBLISH
        and request.subject is not None
        and bool(policy.rules)
        and not _listed(policy.owners, request.consumer)
        and any(rule.roles != [SELF_ROLE] for rule in policy.rules)
    )


T = TypeVar("T")
# GET /api/v1/resources looks at most at this many policies (pages of POLICY_PAGE): past them the
# answer says it is incomplete rather than reading an unbounded table on a console's page load.
POLICY_PAGE = 1000
MAX_LISTED_POLICY_PAGES = 10


@dataclass(frozen=True)
class AccessibleList:
    resources: list[ResourceAccess]
    complete: bool  # False when there were more policies than were looked at


class Authorizer:
    """The enforcement points' single way to ask: batched, cached, invalidated on change."""

    def __init__(
        self,
        point: DecisionPoint,
        version: VersionCounter,
        *,
        ttl_seconds: float = 30.0,
        version_check_seconds: float = 1.0,
    ) -> None:
        self._point = point
        self._version = version
        self._ttl = ttl_seconds
        self._version_check = version_check_seconds
        self._cache: OrderedDict[AccessRequest, tuple[float, int, bool]] = OrderedDict()
        self._remembered: OrderedDict[str, tuple[float, int, Any]] = OrderedDict()
        self._known_version: tuple[float, int] | None = None

    async def _current_version(self) -> int:
        now = time.monotonic()
        if self._known_version is None or now - self._known_version[0] > self._version_check:
            self._known_version = (now, await self._version.current())
        return self._known_version[1]

    async def changed(self) -> None:
        """Call after changing a policy or a role: this process forgets at once, others within a second."""
        version = await self._version.bump()
        self._known_version = (time.monotonic(), version)
        self._cache.clear()
        self._remembered.clear()

    async def remembered(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """``load()``'s answer for ``key``, kept as the decisions are: until a policy or role changes
        (the version) and for at most the TTL; for what the decisions are made from (policies, grants)."""
        version = await self._current_version()
        now = time.monotonic()
        held = self._remembered.get(key)
        if held is not None and held[1] == version and now - held[0] < self._ttl:
            self._remembered.move_to_end(key)
            answer: T = held[2]
            return answer
        loaded = await load()
        self._remembered[key] = (now, version, loaded)
        while len(self._remembered) > 10_000:
            self._remembered.popitem(last=False)
        return loaded

    async def allowed(self, requests: Sequence[AccessRequest]) -> list[bool]:
        if not requests:
            return []
        version = await self._current_version()
        now = time.monotonic()
        answers: dict[AccessRequest, bool] = {}
        missing: list[AccessRequest] = []
        for request in dict.fromkeys(requests):
            cached = self._cache.get(request)
            if cached is not None and cached[1] == version and now - cached[0] < self._ttl:
                answers[request] = cached[2]
            else:
                missing.append(request)
        if missing:
            for request, answer in zip(missing, await self._point.decide(missing), strict=True):
                answers[request] = answer
                self._cache[request] = (now, version, answer)
            while len(self._cache) > 100_000:
                self._cache.popitem(last=False)
        return [answers[r] for r in requests]

    async def allows(self, request: AccessRequest) -> bool:
        return (await self.allowed([request]))[0]

    async def refused_publishing(self, publisher: str, resources: Iterable[str]) -> list[str]:
        """The publish check: which of ``resources`` (sorted, once each) ``publisher`` may not publish to.
        Herald's own resources (``urn:herald:*``) are refused to every outside publisher; the others'
        policies decide."""
        wanted = sorted(set(resources))
        asked = [r for r in wanted if not is_herald_resource(r)]
        answers = dict(
            zip(
                asked,
                await self.allowed([AccessRequest(publisher, r, None, None, Action.PUBLISH) for r in asked]),
                strict=True,
            )
        )
        return [resource for resource in wanted if not answers.get(resource, False)]


def event_request(consumer: str, attributes: Mapping[str, Any], action: Action) -> AccessRequest:
    subject = attributes.get("subject")
    event_type = attributes.get("type")
    return AccessRequest(
        consumer=consumer,
        resource=str(attributes.get("resource")),
        subject=subject if isinstance(subject, str) else None,
        type=event_type if isinstance(event_type, str) else None,
        action=action,
    )


@dataclass(frozen=True)
class Access:
    """What the admin API and the enforcement points share."""

    policies: PolicyStore
    roles: RoleStore
    authorizer: Authorizer
    # False with an external decision point (HERALD_AUTHORIZATION=pdp): Herald's policies decide nothing.
    decides_locally: bool = True

    # The administration use cases: every change to policies or roles bumps the authorization
    # version, so every instance's cached decisions lapse.

    async def policy(self, resource: str) -> ResourcePolicy | None:
        return await self.policies.get(resource)

    async def list_policies(self, after: str | None, limit: int) -> tuple[list[tuple[str, ResourcePolicy]], str | None]:
        return await self.policies.list(after, limit)

    async def accessible(self, consumer: str) -> AccessibleList | None:
        """The resources ``consumer`` may reach (``accessible_resources``); None when an external
        decision point decides, which cannot be asked for a list. The policies and the consumer's
        grants are remembered by the authorizer, so a repeated call reads no storage until they change."""
        if not self.decides_locally:
            return None
        policies, complete = await self.authorizer.remembered("policies", self._all_policies)
        grants = await self.authorizer.remembered(f"grants|{consumer}", lambda: self.roles.grants_of(consumer))
        return AccessibleList(accessible_resources(consumer, policies, grants), complete)

    async def _all_policies(self) -> tuple[list[tuple[str, ResourcePolicy]], bool]:
        """The stored policies, at most ``MAX_LISTED_POLICY_PAGES`` pages; and whether that was all."""
        policies: list[tuple[str, ResourcePolicy]] = []
        after: str | None = None
        for _ in range(MAX_LISTED_POLICY_PAGES):
            page, after = await self.policies.list(after, POLICY_PAGE)
            policies.extend(page)
            if after is None:
                return policies, True
        return policies, False

    async def put_policy(self, resource: str, policy: ResourcePolicy) -> None:
        await self.policies.put(resource, policy)
        await self.authorizer.changed()

    async def delete_policy(self, resource: str) -> bool:
        """False when the resource had no policy (nothing changed)."""
        if not await self.policies.delete(resource):
            return False
        await self.authorizer.changed()
        return True

    async def grants_of(self, holder: str) -> list[RoleGrant]:
        return await self.roles.grants_of(holder)

    async def grant(self, grants: Sequence[RoleGrant]) -> None:
        await self.roles.grant(grants)
        await self.authorizer.changed()

    async def revoke(self, grants: Sequence[RoleGrant]) -> None:
        await self.roles.revoke(grants)
        await self.authorizer.changed()
