"""Builds identity: token validation, authorization (Herald's own policies or an external decision
point), secrets sealed at rest, and publishers' rate limits."""

from __future__ import annotations

from dataclasses import dataclass

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_authorization import TablePolicyStore, TableRoleStore, TableVersionCounter
from shared.adapters.table_identities import TableAccountMappings
from shared.adapters.table_publish_limits import TablePublishBuckets
from shared.config import Settings
from shared.identity.accounts import MappedIdentities
from shared.identity.authorization import Access, Authorizer, DecisionPoint, LocalDecisionPoint
from shared.identity.rate_limit import LeasedTokenBuckets
from shared.identity.secret_box import EnvelopeSecretBox, LocalSecretBox, SecretBox
from shared.identity.tokens import JwksFileKeys, SigningKeys, TokenValidator


@dataclass
class Identity:
    tokens: TokenValidator
    identities: MappedIdentities
    authorizer: Authorizer
    access: Access
    publish_limiter: LeasedTokenBuckets
    secret_box: SecretBox


def build_identity(config: Settings, tables: TableServiceClient) -> Identity:
    policies, roles = TablePolicyStore(tables), TableRoleStore(tables)
    authorizer = Authorizer(decision_point(config, policies, roles), TableVersionCounter(tables))
    identities = MappedIdentities(TableAccountMappings(tables))
    return Identity(
        tokens=TokenValidator(
            issuer=config.auth_issuer,
            audience=config.auth_audience,
            keys=signing_keys(config),
            accounts=mapped_accounts(config, identities),
        ),
        identities=identities,
        authorizer=authorizer,
        access=Access(
            policies=policies, roles=roles, authorizer=authorizer, decides_locally=config.authorization == "local"
        ),
        publish_limiter=LeasedTokenBuckets(
            TablePublishBuckets(tables), rate_per_second=config.publish_rate_per_second, burst=config.publish_burst
        ),
        secret_box=secret_box(config),
    )


def secret_box(config: Settings) -> SecretBox:
    """A Key Vault key wraps the data keys in Azure; locally a key file seals them."""
    if config.secret_key_uri:
        from shared.adapters.key_vault import KeyVaultKeyWrapper

        identity = config.storage  # the app's managed identity, as its storage connection names it
        return EnvelopeSecretBox(KeyVaultKeyWrapper.from_key_uri(config.secret_key_uri, identity))
    if config.secret_key_path:
        return LocalSecretBox.from_file(config.secret_key_path)
    raise RuntimeError("set HERALD_SECRET_KEY_URI (a Key Vault key, Azure) or HERALD_SECRET_KEY_PATH (local)")


def decision_point(config: Settings, policies: TablePolicyStore, roles: TableRoleStore) -> DecisionPoint:
    """Herald's own policies and roles, or an external policy decision point (HERALD_AUTHORIZATION=pdp)."""
    if config.authorization == "pdp":
        from shared.adapters.http_decision_point import HttpDecisionPoint

        return HttpDecisionPoint.from_settings(config)
    if config.authorization != "local":
        raise RuntimeError("HERALD_AUTHORIZATION is local or pdp")
    return LocalDecisionPoint(policies, roles)


def signing_keys(config: Settings) -> SigningKeys:
    if config.auth_openid_metadata_url:
        from shared.adapters.openid_keys import OpenIdKeys

        return OpenIdKeys(config.auth_openid_metadata_url)
    if config.auth_jwks_path:
        return JwksFileKeys(config.auth_jwks_path)
    raise RuntimeError("set HERALD_AUTH_OPENID_METADATA_URL (Azure) or HERALD_AUTH_JWKS_PATH (local)")


def mapped_accounts(config: Settings, identities: MappedIdentities) -> MappedIdentities | None:
    """The identities table when tokens name accounts (Entra ID), None when ``sub`` is the identity."""
    if config.auth_identities == "mapped":
        return identities
    if config.auth_identities != "token":
        raise RuntimeError("HERALD_AUTH_IDENTITIES is token or mapped")
    return None
