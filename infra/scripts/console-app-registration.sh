#!/bin/sh
# Registers the Herald Console with Microsoft Entra ID and prepares Herald's API registration for it:
#
#   herald-api      the API (created if missing): Application ID URI api://<app id>, v2.0 access
#                   tokens, the delegated scopes and app roles events.publish, events.read,
#                   events.subscribe, notifications.order and admin. Its tokens name the caller's
#                   account (tid, oid); Herald maps accounts to Herald identities itself
#                   (HERALD_AUTH_IDENTITIES=mapped, /api/v1/admin/identities), nothing in the directory does.
#   herald-console  a single-page application (authorization code + PKCE, no secret), redirect URI
#                   <Herald's URL>/console/, delegated permissions to the API's ordinary scopes.
#
# Usage: infra/scripts/console-app-registration.sh [https://<function app host>]
# (default: the azd environment's HERALD_API_URL). Run it as a user who may create app registrations;
# it changes nothing in Azure resources and prints the `azd env set` lines to run afterwards.
# Idempotent: both applications are found by display name, and only what is missing is added.
#
# Why az/Graph calls rather than Bicep's Microsoft Graph extension: the registrations belong to the
# tenant, not to one azd environment (several environments share them, each adding its redirect
# URI), and they need directory rights that the identity running `azd provision` usually lacks.
set -eu

API_NAME="${HERALD_API_APP_NAME:-herald-api}"
CONSOLE_NAME="${HERALD_CONSOLE_APP_NAME:-herald-console}"
GRAPH="https://graph.microsoft.com/v1.0"
API_SCOPES="events.publish events.read events.subscribe notifications.order admin"
# The console does not ask for `admin`: a delegated scope, once consented, is in every user's token.
# Administrators get the API's app role `admin` instead (it reaches the token's roles claim).
CONSOLE_SCOPES="events.publish events.read events.subscribe notifications.order"

die() {
  echo "console-app-registration: $*" >&2
  exit 1
}

new_id() {
  if [ -r /proc/sys/kernel/random/uuid ]; then cat /proc/sys/kernel/random/uuid
  elif command -v uuidgen >/dev/null 2>&1; then uuidgen | tr 'A-Z' 'a-z'
  else python3 -c 'import uuid; print(uuid.uuid4())'
  fi
}

has_word() { # has_word WORD LIST: LIST (space or newline separated) contains WORD
  printf '%s\n' $2 | grep -qxF -- "$1"
}

# A JSON array read from az with new entries appended ("[]" or "[ … ]" from `-o json`).
appended() { # appended EXISTING_JSON_ARRAY NEW_ENTRIES_COMMA_SEPARATED
  existing="$(printf '%s' "$1" | tr -d '\n')"
  case "$existing" in
    ""|"[]"|"null") printf '[%s]' "$2" ;;
    *) printf '%s, %s]' "${existing%]*}" "$2" ;;
  esac
}

# The one application with this display name; created (single tenant) when there is none.
ensure_app() {
  ids="$(az ad app list --filter "displayName eq '$1'" --query "[].appId" -o tsv)"
  count="$(printf '%s\n' $ids | grep -c . || true)"
  if [ "$count" -gt 1 ]; then
    die "$count applications are named '$1'; delete the extra ones or set HERALD_API_APP_NAME/HERALD_CONSOLE_APP_NAME"
  fi
  if [ "$count" -eq 0 ]; then
    echo "Creating app registration $1" >&2
    ids="$(az ad app create --display-name "$1" --sign-in-audience AzureADMyOrg --query appId -o tsv)"
  else
    echo "Found app registration $1 ($ids)" >&2
  fi
  printf '%s' "$ids"
}

ensure_service_principal() {
  az ad sp show --id "$1" --query id -o tsv >/dev/null 2>&1 || az ad sp create --id "$1" --query id -o tsv >/dev/null
}

show_json() { # show_json APP_ID QUERY: the value as one line of JSON (null when unset)
  value="$(az ad app show --id "$1" --query "$2" -o json | tr -d '\n')"
  printf '%s' "${value:-null}"
}

patch_app() { # patch_app APP_ID JSON_BODY
  az rest --method PATCH --url "$GRAPH/applications(appId='$1')" \
    --headers "Content-Type=application/json" --body "$2" >/dev/null
}

base="${1:-${HERALD_API_URL:-}}"
if [ -z "$base" ]; then
  base="$(azd env get-value HERALD_API_URL 2>/dev/null || true)"
fi
[ -n "$base" ] || die "pass Herald's URL (https://<function app host>) or run 'azd up' first so the environment has HERALD_API_URL"
case "$base" in
  https://*|http://localhost:*|http://localhost/*|http://localhost) ;;
  *) die "'$base' is not https: Entra ID accepts SPA redirect URIs on https (or http://localhost) only" ;;
esac
redirect="${base%/}/console/"
tenant="$(az account show --query tenantId -o tsv)"

# ---------------------------------------------------------------------------------------- the API
api="$(ensure_app "$API_NAME")"
ensure_service_principal "$api"

uris="$(az ad app show --id "$api" --query "identifierUris" -o tsv)"
if ! has_word "api://$api" "$uris"; then
  # shellcheck disable=SC2086  # the existing URIs are kept, one argument each
  az ad app update --id "$api" --identifier-uris $uris "api://$api"
fi
version="$(az ad app show --id "$api" --query "api.requestedAccessTokenVersion" -o tsv)"
if [ "$version" != "2" ]; then
  az ad app update --id "$api" --set api.requestedAccessTokenVersion=2
fi

have="$(az ad app show --id "$api" --query "api.oauth2PermissionScopes[].value" -o tsv)"
added=""
for scope in $API_SCOPES; do
  has_word "$scope" "$have" && continue
  # `admin` needs an administrator's consent; a user can consent to the others for themselves.
  consent=User
  [ "$scope" = admin ] && consent=Admin
  entry="{\"id\":\"$(new_id)\",\"value\":\"$scope\",\"type\":\"$consent\",\"isEnabled\":true,"
  entry="$entry\"adminConsentDisplayName\":\"Herald $scope\",\"adminConsentDescription\":\"Herald: $scope\","
  entry="$entry\"userConsentDisplayName\":\"Herald $scope\",\"userConsentDescription\":\"Herald: $scope\"}"
  added="${added:+$added, }$entry"
done
if [ -n "$added" ]; then
  echo "Adding delegated scopes to $API_NAME" >&2
  # The whole api object is sent back, so nothing already set on it (the Azure CLI's pre-authorization,
  # known clients) is lost, however Graph merges a complex property.
  existing="$(show_json "$api" 'api.oauth2PermissionScopes || `[]`')"
  body="\"acceptMappedClaims\":$(show_json "$api" 'api.acceptMappedClaims'),"
  body="$body\"knownClientApplications\":$(show_json "$api" 'api.knownClientApplications || `[]`'),"
  body="$body\"preAuthorizedApplications\":$(show_json "$api" 'api.preAuthorizedApplications || `[]`'),"
  body="$body\"requestedAccessTokenVersion\":2,\"oauth2PermissionScopes\":$(appended "$existing" "$added")"
  patch_app "$api" "{\"api\":{$body}}"
fi

have="$(az ad app show --id "$api" --query "appRoles[].value" -o tsv)"
added=""
for role in $API_SCOPES; do
  has_word "$role" "$have" && continue
  members='["Application"]'
  [ "$role" = admin ] && members='["User","Application"]'
  entry="{\"id\":\"$(new_id)\",\"value\":\"$role\",\"allowedMemberTypes\":$members,\"isEnabled\":true,"
  entry="$entry\"displayName\":\"Herald $role\",\"description\":\"Herald: $role\"}"
  added="${added:+$added, }$entry"
done
if [ -n "$added" ]; then
  echo "Adding app roles to $API_NAME" >&2
  existing="$(show_json "$api" 'appRoles || `[]`')"
  patch_app "$api" "{\"appRoles\":$(appended "$existing" "$added")}"
fi
admin_members="$(az ad app show --id "$api" --query "appRoles[?value=='admin'].allowedMemberTypes[]" -o tsv)"
if ! has_word User "$admin_members"; then
  echo "Note: the app role 'admin' of $API_NAME is not assignable to users; allow 'Users/Groups' on it in the portal so administrators can use the console's Administration page." >&2
fi

# ------------------------------------------------------------------------------------ the console
console="$(ensure_app "$CONSOLE_NAME")"
ensure_service_principal "$console"

redirects="$(az ad app show --id "$console" --query "spa.redirectUris" -o tsv)"
if ! has_word "$redirect" "$redirects"; then
  echo "Adding SPA redirect URI $redirect" >&2
  list=""
  for uri in $redirects "$redirect"; do list="${list:+$list,}\"$uri\""; done
  patch_app "$console" "{\"spa\":{\"redirectUris\":[$list]}}"
fi

granted="$(az ad app permission list --id "$console" --query "[?resourceAppId=='$api'].resourceAccess[].id" -o tsv)"
missing=""
for scope in $CONSOLE_SCOPES; do
  id="$(az ad app show --id "$api" --query "api.oauth2PermissionScopes[?value=='$scope'].id | [0]" -o tsv)"
  [ -n "$id" ] || die "$API_NAME has no scope $scope"
  has_word "$id" "$granted" || missing="$missing $id=Scope"
done
if [ -n "$missing" ]; then
  echo "Adding delegated permissions to $CONSOLE_NAME" >&2
  # shellcheck disable=SC2086  # one argument per permission
  az ad app permission add --id "$console" --api "$api" --api-permissions $missing >/dev/null
fi

scopes="openid profile offline_access"
for scope in $CONSOLE_SCOPES; do scopes="$scopes api://$api/$scope"; done

cat <<EOF

Done. Set these in the azd environment, then run 'azd provision' (or 'azd up'):

  azd env set HERALD_AUTH_AUDIENCE api://$api
  azd env set HERALD_AUTH_IDENTITIES mapped
  azd env set HERALD_CONSOLE_CLIENT_ID $console
  azd env set HERALD_CONSOLE_AUTHORITY https://login.microsoftonline.com/$tenant/v2.0
  azd env set HERALD_CONSOLE_SCOPES "$scopes"

Grant admin consent once (Privileged Role Administrator or Cloud Application Administrator):

  az ad app permission admin-consent --id $console
  (or the portal: App registrations -> $CONSOLE_NAME -> API permissions -> Grant admin consent)

Administrators get the app role 'admin': Enterprise applications -> $API_NAME -> Users and groups.
An administrator then maps each account to its Herald identity (without one, Herald answers 401),
their own too (until then they reach the admin routes only, as system:herald-admin):

  PUT ${base%/}/api/v1/admin/identities/$tenant/<object id>   {"identity": "person:<11 digits>"}

A user's object id: az ad user show --id <user principal name> --query id -o tsv
An application calling as itself is mapped by its service principal's object id:
  az ad sp show --id <client id> --query id -o tsv
EOF
