#!/bin/sh
# azd postdeploy hook: Event Grid subscriptions with endpoint type AzureFunction need the functions
# to exist, so the first provision skips them. After the first code deploy, turn them on and
# provision once more. Later `azd up` runs keep HERALD_EVENT_SUBSCRIPTIONS=true and skip this.
set -eu
current="$(azd env get-value HERALD_EVENT_SUBSCRIPTIONS 2>/dev/null || true)"
if [ "$current" = "true" ]; then
  echo "Event Grid subscriptions already enabled."
  exit 0
fi
azd env set HERALD_EVENT_SUBSCRIPTIONS true
azd provision --no-prompt
