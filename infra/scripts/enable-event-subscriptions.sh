#!/bin/sh
# azd postdeploy hook. Event Grid subscriptions with endpoint type AzureFunction are validated
# against sites/<app>/functions/<name>, which exists only once the deployed host has started and
# synced its triggers. So the first provision skips them; here we wait until every function they
# target is listed, then provision once more with HERALD_EVENT_SUBSCRIPTIONS=true. Later
# `azd up` runs keep that value and skip this. The function names come from the Bicep output
# HERALD_EVENT_GRID_FUNCTIONS.
set -eu

current="$(azd env get-value HERALD_EVENT_SUBSCRIPTIONS 2>/dev/null || true)"
if [ "$current" = "true" ]; then
  echo "Event Grid subscriptions already enabled."
  exit 0
fi

functions="$(azd env get-value HERALD_EVENT_GRID_FUNCTIONS)"
group="$(azd env get-value AZURE_RESOURCE_GROUP)"
app="$(azd env get-value AZURE_FUNCTION_APP_NAME)"
timeout="${HERALD_FUNCTIONS_TIMEOUT_SECONDS:-900}"
interval="${HERALD_FUNCTIONS_POLL_SECONDS:-15}"
started="$(date +%s)"

echo "Waiting for function app $app to list: $functions"
while :; do
  missing=""
  for name in $(printf '%s' "$functions" | tr ',' ' '); do
    if ! az functionapp function show --resource-group "$group" --name "$app" --function-name "$name" --output none >/dev/null 2>&1; then
      missing="${missing:+$missing, }$name"
    fi
  done
  if [ -z "$missing" ]; then
    break
  fi
  if [ $(($(date +%s) - started)) -ge "$timeout" ]; then
    cat >&2 <<MESSAGE
Timed out after ${timeout}s waiting for function app $app (resource group $group) to list: $missing.
Event Grid accepts a subscription only to a function the host has listed, so the delivery-report
subscriptions were not created. Check that:
  - the deploy step succeeded and the app started: Application Insights > Failures, or the
    FunctionAppLogs table in Log Analytics (an import error in function_app.py stops every function);
  - az functionapp function list --resource-group $group --name $app --query "[].name" lists them.
Then run this hook again: azd hooks run postdeploy (HERALD_FUNCTIONS_TIMEOUT_SECONDS waits longer).
MESSAGE
    exit 1
  fi
  echo "  not listed yet: $missing"
  sleep "$interval"
done

azd env set HERALD_EVENT_SUBSCRIPTIONS true
if ! azd provision --no-prompt; then
  # Leave the flag off so that the next `azd up` (or this hook) tries again.
  azd env set HERALD_EVENT_SUBSCRIPTIONS false
  exit 1
fi
