# azd postdeploy hook (Windows): see enable-event-subscriptions.sh, which this mirrors step by step.
$ErrorActionPreference = 'Stop'

$current = (azd env get-value HERALD_EVENT_SUBSCRIPTIONS 2>$null)
if ($current -eq 'true') {
    Write-Output 'Event Grid subscriptions already enabled.'
    exit 0
}

$functions = (azd env get-value HERALD_EVENT_GRID_FUNCTIONS)
$group = (azd env get-value AZURE_RESOURCE_GROUP)
$app = (azd env get-value AZURE_FUNCTION_APP_NAME)
$timeout = if ($env:HERALD_FUNCTIONS_TIMEOUT_SECONDS) { [int]$env:HERALD_FUNCTIONS_TIMEOUT_SECONDS } else { 900 }
$interval = if ($env:HERALD_FUNCTIONS_POLL_SECONDS) { [int]$env:HERALD_FUNCTIONS_POLL_SECONDS } else { 15 }
$started = Get-Date

Write-Output "Waiting for function app $app to list: $functions"
while ($true) {
    $missing = @()
    foreach ($name in ($functions -split ',' | Where-Object { $_ })) {
        az functionapp function show --resource-group $group --name $app --function-name $name --output none 2>$null | Out-Null
        if ($LASTEXITCODE -ne 0) { $missing += $name }
    }
    if ($missing.Count -eq 0) { break }
    if (((Get-Date) - $started).TotalSeconds -ge $timeout) {
        $list = $missing -join ', '
        [Console]::Error.WriteLine(@"
Timed out after ${timeout}s waiting for function app $app (resource group $group) to list: $list.
Event Grid accepts a subscription only to a function the host has listed, so the delivery-report
subscriptions were not created. Check that:
  - the deploy step succeeded and the app started: Application Insights > Failures, or the
    FunctionAppLogs table in Log Analytics (an import error in function_app.py stops every function);
  - az functionapp function list --resource-group $group --name $app --query "[].name" lists them.
Then run this hook again: azd hooks run postdeploy (HERALD_FUNCTIONS_TIMEOUT_SECONDS waits longer).
"@)
        exit 1
    }
    Write-Output "  not listed yet: $($missing -join ', ')"
    Start-Sleep -Seconds $interval
}

azd env set HERALD_EVENT_SUBSCRIPTIONS true
azd provision --no-prompt
if ($LASTEXITCODE -ne 0) {
    # Leave the flag off so that the next `azd up` (or this hook) tries again.
    azd env set HERALD_EVENT_SUBSCRIPTIONS false
    exit 1
}
