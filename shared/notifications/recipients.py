"""Recipient lookup: from what the sender named to contact points, one target per address and channel."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from shared.notifications.model import Channel, NotificationChannel, RecipientLookup, RecipientSpec, Status
from shared.notifications.ports import ContactRegistry, Organization, RecipientAuthorizer

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
DEFAULT_REGION = "NO"


def valid_email(value: str) -> bool:
    # fullmatch: ``$`` alone also matches before a trailing newline, which must never reach a header.
    return len(value) <= 254 and bool(_EMAIL.fullmatch(value))


def e164(value: str | None, *, strict: bool = False) -> str | None:
    """The number in E.164, or None if it is not a valid number. ``strict``: it must already be E.164."""
    if not value:
        return None
    if strict and not re.fullmatch(r"\+[1-9]\d{6,14}", value):
        return None
    try:
        parsed = phonenumbers.parse(value, None if strict else DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Target:
    """One notification to create."""

    channel: Channel
    address: str | None
    recipient: RecipientSpec
    name: str | None = None
    organization_number: str | None = None
    status: Status = Status.NEW
    description: str | None = None


def primary_channel(channel: NotificationChannel) -> Channel:
    return Channel.SMS if channel in (NotificationChannel.SMS, NotificationChannel.SMS_PREFERRED) else Channel.EMAIL


def choose(channel: NotificationChannel, emails: list[str], mobiles: list[str]) -> list[tuple[Channel, str]]:
    email = [(Channel.EMAIL, address) for address in emails]
    sms = [(Channel.SMS, number) for number in mobiles]
    if channel is NotificationChannel.EMAIL:
        return email
    if channel is NotificationChannel.SMS:
        return sms
    if channel is NotificationChannel.EMAIL_PREFERRED:
        return email or sms
    if channel is NotificationChannel.SMS_PREFERRED:
        return sms or email
    return email + sms


def _clean_emails(values: list[str | None] | tuple[str, ...]) -> list[str]:
    return [value for value in values if value and valid_email(value)]


def _clean_mobiles(values: list[str | None] | tuple[str, ...]) -> list[str]:
    return [number for number in (e164(value) for value in values) if number]


async def resolve(
    channel: NotificationChannel,
    recipients: list[RecipientSpec],
    *,
    ignore_reservation: bool,
    resource_id: str | None,
    registry: ContactRegistry,
    authorizer: RecipientAuthorizer,
) -> tuple[list[Target], RecipientLookup]:
    nins = sorted({r.national_identity_number for r in recipients if r.national_identity_number})
    orgs = sorted({r.organization_number for r in recipients if r.organization_number})
    persons = await registry.persons(nins) if nins else {}
    organizations = await registry.organizations(orgs) if orgs else {}

    targets: list[Target] = []
    reserved: list[str] = []
    missing: list[str] = []
    fallback = primary_channel(channel)

    def unreachable(spec: RecipientSpec, status: Status, detail: str, name: str | None = None) -> None:
        targets.append(Target(fallback, None, spec, name=name, status=status, description=detail))

    for spec in recipients:
        if spec.email_address or spec.mobile_number:
            chosen = choose(
                channel,
                [spec.email_address] if spec.email_address else [],
                [spec.mobile_number] if spec.mobile_number else [],
            )
            if not chosen:
                missing.append(spec.label)
                unreachable(spec, Status.FAILED_RECIPIENT_NOT_IDENTIFIED, f"no contact point for channel {channel}")
            targets.extend(Target(ch, address, spec) for ch, address in chosen)
        elif spec.national_identity_number:
            person = persons.get(spec.national_identity_number)
            if person is None:
                missing.append(spec.label)
                unreachable(spec, Status.FAILED_RECIPIENT_NOT_IDENTIFIED, "the person is not in the contact registry")
                continue
            if person.reserved and not ignore_reservation:
                reserved.append(spec.national_identity_number)
                unreachable(
                    spec,
                    Status.FAILED_RECIPIENT_RESERVED,
                    "the person is reserved against digital contact",
                    person.name,
                )
                continue
            chosen = choose(channel, _clean_emails([person.email_address]), _clean_mobiles([person.mobile_number]))
            if not chosen:
                missing.append(spec.label)
                unreachable(
                    spec, Status.FAILED_RECIPIENT_NOT_IDENTIFIED, "the person has no contact point", person.name
                )
            targets.extend(Target(ch, address, spec, name=person.name) for ch, address in chosen)
        elif spec.organization_number:
            organization = organizations.get(spec.organization_number)
            found = await _organization_targets(channel, spec, organization, resource_id, authorizer)
            if not found:
                missing.append(spec.label)
                unreachable(
                    spec,
                    Status.FAILED_RECIPIENT_NOT_IDENTIFIED,
                    "the organisation has no contact point" if organization else "the organisation is not registered",
                    organization.name if organization else None,
                )
            targets.extend(found)

    unique: dict[tuple[Channel, str, str], Target] = {}
    for target in targets:
        key = (target.channel, target.address or "", target.recipient.label if target.address is None else "")
        unique.setdefault(key, target)
    failed = len(set(reserved) | set(missing))
    status = "Success" if failed == 0 else ("Failed" if failed >= len(recipients) else "PartialSuccess")
    return list(unique.values()), RecipientLookup(status, sorted(set(reserved)), sorted(set(missing)))


async def _organization_targets(
    channel: NotificationChannel,
    spec: RecipientSpec,
    organization: Organization | None,
    resource_id: str | None,
    authorizer: RecipientAuthorizer,
) -> list[Target]:
    if organization is None:
        return []
    number = organization.organization_number
    found = [
        Target(ch, address, spec, name=organization.name, organization_number=number)
        for ch, address in choose(
            channel, _clean_emails(organization.email_addresses), _clean_mobiles(organization.mobile_numbers)
        )
    ]
    if resource_id:
        for holder in await authorizer.authorized(organization, resource_id):
            found.extend(
                Target(ch, address, spec, name=organization.name, organization_number=number)
                for ch, address in choose(
                    channel, _clean_emails([holder.email_address]), _clean_mobiles([holder.mobile_number])
                )
            )
    unique: dict[tuple[Channel, str | None], Target] = {}
    for target in found:
        unique.setdefault((target.channel, target.address), target)
    return list(unique.values())
