"""Which resources a caller may reach (GET /api/v1/resources, and the pure decision under it), and the
administrators' paged list of policies (GET /api/v1/admin/policies)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from shared.identity.authorization import (
    MAX_LISTED_POLICY_PAGES,
    POLICY_PAGE,
    Access,
    AccessRule,
    Action,
    Authorizer,
    LocalDecisionPoint,
    Reach,
    ResourceAccess,
    ResourcePolicy,
    RoleGrant,
    accessible_resources,
)
from shared.urns import NOTIFICATIONS_URN, SUBSCRIPTIONS_URN
from tests.support.identities import random_org, random_person

ME = "person:01017012343"
CLIENT = "org:310000000"
OTHER = "org:974761076"


def _rule(*roles: str, actions: tuple[Action, ...] = (Action.READ, Action.SUBSCRIBE)) -> AccessRule:
    return AccessRule(roles=list(roles), actions=list(actions))


def _reach(found: list[ResourceAccess], resource: str) -> tuple[bool, Reach, Reach]:
    access = {a.resource: a for a in found}[resource]
    return access.publish, access.read, access.subscribe


def test_owners_publishers_self_rules_and_held_roles_reach_a_resource_and_nothing_else_does():
    policies = [
        ("urn:x:owned", ResourcePolicy(owners=[ME])),
        ("urn:x:anyone", ResourcePolicy(owners=["*"])),
        ("urn:x:published", ResourcePolicy(publishers=[ME])),
        ("urn:x:self", ResourcePolicy(rules=[_rule("self", actions=(Action.READ,))])),
        ("urn:x:role", ResourcePolicy(rules=[_rule("DAGL")])),
        ("urn:x:delegated", ResourcePolicy(rules=[_rule("REGNA", actions=(Action.SUBSCRIBE,))])),
        ("urn:x:others-role", ResourcePolicy(owners=[OTHER], publishers=[OTHER], rules=[_rule("ADMIN")])),
        ("urn:x:nobody", ResourcePolicy()),
    ]
    grants = [RoleGrant(CLIENT, ME, "DAGL"), RoleGrant(CLIENT, ME, "REGNA", delegated=True)]
    found = accessible_resources(ME, policies, grants)
    assert [a.resource for a in found] == sorted(a.resource for a in found)
    assert {a.resource for a in found} == {
        "urn:x:owned", "urn:x:anyone", "urn:x:published", "urn:x:self", "urn:x:role", "urn:x:delegated",
        SUBSCRIPTIONS_URN, f"{NOTIFICATIONS_URN}:{ME}",
    }  # fmt: skip
    assert _reach(found, "urn:x:owned") == (False, Reach.ALL, Reach.ALL)
    assert _reach(found, "urn:x:anyone") == (False, Reach.ALL, Reach.ALL)
    assert _reach(found, "urn:x:published") == (True, Reach.NONE, Reach.NONE)
    assert _reach(found, "urn:x:self") == (False, Reach.SOME, Reach.NONE)
    assert _reach(found, "urn:x:role") == (False, Reach.SOME, Reach.SOME)
    assert _reach(found, "urn:x:delegated") == (False, Reach.NONE, Reach.SOME)
    # Herald's own: the events about the caller's subscriptions, and its own notification statuses.
    assert _reach(found, SUBSCRIPTIONS_URN) == (False, Reach.SOME, Reach.SOME)
    assert _reach(found, f"{NOTIFICATIONS_URN}:{ME}") == (False, Reach.ALL, Reach.ALL)


def test_a_stored_policy_never_overrides_a_built_in_one():
    stored = [
        (f"{NOTIFICATIONS_URN}:{OTHER}", ResourcePolicy(owners=["*"])),
        (f"{NOTIFICATIONS_URN}:{ME}", ResourcePolicy()),
    ]
    found = accessible_resources(ME, stored, [])
    assert {a.resource for a in found} == {SUBSCRIPTIONS_URN, f"{NOTIFICATIONS_URN}:{ME}"}
    assert _reach(found, f"{NOTIFICATIONS_URN}:{ME}") == (False, Reach.ALL, Reach.ALL)


async def test_the_resources_route_lists_what_the_callers_policies_and_roles_open(client, issuer, services):
    me, stranger = random_person(), random_org()
    admin = issuer.headers("admin", sub="system:herald-admin")
    tag = uuid.uuid4().hex[:8]
    mine, theirs = f"urn:test:listing{tag}:mine", f"urn:test:listing{tag}:theirs"
    by_role = f"urn:test:listing{tag}:role"
    policies = {
        mine: {"owners": [me]},
        theirs: {"owners": [stranger], "rules": [{"roles": ["AUDIT"], "actions": ["read"]}]},
        by_role: {"rules": [{"roles": ["DAGL"], "actions": ["read"]}]},
    }
    for resource, policy in policies.items():
        assert (await client.put(f"/api/v1/admin/policies/{resource}", json=policy, headers=admin)).status_code == 200
    role = {"party": CLIENT, "holder": me, "role": "DAGL"}
    assert (await client.post("/api/v1/admin/roles", json=role, headers=admin)).status_code == 201

    for scope in ("events.read", "events.subscribe"):
        response = await client.get("/api/v1/resources", headers=issuer.headers(scope, sub=me))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["authorization"] == "local" and body["complete"] is True
        listed = {r["resource"]: r for r in body["resources"]}
        assert listed[mine] == {"resource": mine, "publish": False, "read": "all", "subscribe": "all"}
        assert listed[by_role]["read"] == "some" and listed[by_role]["subscribe"] == "none"
        assert theirs not in listed
        assert f"{NOTIFICATIONS_URN}:{me}" in listed and f"{NOTIFICATIONS_URN}:{stranger}" not in listed
    response = await client.get("/api/v1/resources", headers=issuer.headers("notifications.order", sub=me))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")

    # An external decision point cannot be asked for a list: only Herald's own, and said so.
    services.access = replace(services.access, decides_locally=False)
    body = (await client.get("/api/v1/resources", headers=issuer.headers("events.read", sub=me))).json()
    assert body["authorization"] == "pdp" and body["complete"] is False
    assert {r["resource"] for r in body["resources"]} == {SUBSCRIPTIONS_URN, f"{NOTIFICATIONS_URN}:{me}"}
    assert {r["read"] for r in body["resources"]} == {"unknown"}


async def test_policies_are_listed_a_page_at_a_time_each_once(client, issuer):
    admin = issuer.headers("admin", sub="system:herald-admin")
    tag = uuid.uuid4().hex[:8]
    made = {f"urn:test:paged{tag}:{n}": {"owners": [random_org()]} for n in range(5)}
    for resource, policy in made.items():
        assert (await client.put(f"/api/v1/admin/policies/{resource}", json=policy, headers=admin)).status_code == 200
    seen: Counter[str] = Counter()
    url: str | None = "/api/v1/admin/policies?size=3"
    while url is not None:
        response = await client.get(url, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["policies"]) <= 3
        for policy in body["policies"]:
            seen[policy["resource"]] += 1
            if policy["resource"] in made:
                assert policy["owners"] == made[policy["resource"]]["owners"]
        link = response.headers.get("Link")
        match = re.fullmatch(r'<([^>]+)>; rel="next"', link or "")
        assert link is None or match is not None, link
        url = match.group(1) if match else None
    assert set(made) <= set(seen)
    assert max(seen.values()) == 1

    for query in ("size=0", "size=1001", "after=nonsense", "after="):
        response = await client.get(f"/api/v1/admin/policies?{query}", headers=admin)
        assert response.status_code == 400, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    reader = issuer.headers("events.read", sub=random_org())
    assert (await client.get("/api/v1/admin/policies", headers=reader)).status_code == 403


def test_a_policy_open_to_every_publisher_is_listed_for_every_caller():
    policies = [("urn:x:open", ResourcePolicy(publishers=["*"]))]
    for caller in (ME, CLIENT, OTHER, random_org(), random_person(), "system:some-system"):
        found = accessible_resources(caller, policies, [])
        assert _reach(found, "urn:x:open") == (True, Reach.NONE, Reach.NONE), caller


class _Policies:
    """A PolicyStore at the port, counting its reads."""

    def __init__(self, policies: dict[str, ResourcePolicy]) -> None:
        self.stored = policies
        self.reads = 0

    async def get(self, resource: str) -> ResourcePolicy | None:
        self.reads += 1
        return self.stored.get(resource)

    async def list(self, after: str | None, limit: int) -> tuple[list[tuple[str, ResourcePolicy]], str | None]:
        self.reads += 1
        keys = sorted(k for k in self.stored if after is None or k > after)
        page = keys[:limit]
        return [(k, self.stored[k]) for k in page], (page[-1] if len(keys) > limit else None)

    async def put(self, resource: str, policy: ResourcePolicy) -> None:
        self.stored[resource] = policy

    async def delete(self, resource: str) -> bool:
        return self.stored.pop(resource, None) is not None


class _Roles:
    def __init__(self) -> None:
        self.reads = 0

    async def roles(self, holder: str, party: str) -> frozenset[str]:
        return frozenset()

    async def grants_of(self, holder: str) -> list[RoleGrant]:
        self.reads += 1
        return []

    async def grant(self, grants: Sequence[RoleGrant]) -> None: ...

    async def revoke(self, grants: Sequence[RoleGrant]) -> None: ...


class _Version:
    def __init__(self) -> None:
        self.value = 0

    async def current(self) -> int:
        return self.value

    async def bump(self) -> int:
        self.value += 1
        return self.value


def _access(policies: _Policies, roles: _Roles, version: _Version) -> Access:
    authorizer = Authorizer(LocalDecisionPoint(policies, roles), version, version_check_seconds=0)
    return Access(policies=policies, roles=roles, authorizer=authorizer)


async def test_a_repeated_listing_reads_no_storage_until_a_policy_changes():
    policies, roles, version = _Policies({"urn:x:a": ResourcePolicy(owners=["*"])}), _Roles(), _Version()
    access = _access(policies, roles, version)
    first = await access.accessible(ME)
    assert first is not None and first.complete and "urn:x:a" in {a.resource for a in first.resources}
    reads = (policies.reads, roles.reads)
    again = await access.accessible(ME)
    assert again == first and (policies.reads, roles.reads) == reads  # a console's page load reads nothing

    await access.put_policy("urn:x:b", ResourcePolicy(publishers=["*"]))  # bumps the version
    changed = await access.accessible(ME)
    assert changed is not None and "urn:x:b" in {a.resource for a in changed.resources}
    # Another instance's change shows once its version bump is seen.
    policies.stored["urn:x:c"] = ResourcePolicy(owners=["*"])
    version.value += 1
    seen = await access.accessible(ME)
    assert seen is not None and "urn:x:c" in {a.resource for a in seen.resources}


async def test_the_listing_reads_a_bounded_number_of_policy_pages_and_says_when_it_stopped():
    open_policy = ResourcePolicy(owners=["*"])
    count = POLICY_PAGE * MAX_LISTED_POLICY_PAGES + 1
    policies = _Policies({f"urn:x:{n:06d}": open_policy for n in range(count)})
    found = await _access(policies, _Roles(), _Version()).accessible(ME)
    assert found is not None and found.complete is False
    assert policies.reads == MAX_LISTED_POLICY_PAGES
    assert "urn:x:000000" in {a.resource for a in found.resources}
