# azd postdeploy hook (Windows): see enable-event-subscriptions.sh.
$ErrorActionPreference = 'Stop'
$current = (azd env get-value HERALD_EVENT_SUBSCRIPTIONS 2>$null)
if ($current -eq 'true') {
    Write-Output 'Event Grid subscriptions already enabled.'
    exit 0
}
azd env set HERALD_EVENT_SUBSCRIPTIONS true
azd provision --no-prompt
