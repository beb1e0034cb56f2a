metadata name = 'Function app (Flex Consumption, Linux, Python)'
metadata description = 'The Herald function app. Runs as a user-assigned managed identity; every connection setting is identity-based (`__fullyQualifiedNamespace`, `__tableServiceUri`, ...).'

@description('Required. Name of the function app.')
param name string

@description('Optional. Location for the function app.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource (azd finds the app by its `azd-service-name` tag).')
param tags object = {}

@description('Required. Resource ID of the Flex Consumption plan.')
param serverFarmResourceId string

@description('Required. Resource ID of the user-assigned managed identity.')
param userAssignedIdentityResourceId string

@description('Required. Blob container URL that holds the deployment package (`https://<account>.blob.core.windows.net/<container>`).')
param deploymentContainerUrl string

@description('Optional. Python version.')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Optional. Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Maximum number of instances the plan may scale out to (Flex Consumption accepts 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Required. App settings (name to value). Identity-based only: no keys, no connection strings.')
param appSettings object

@description('Optional. Resource ID of a Log Analytics workspace for diagnostic settings.')
param diagnosticWorkspaceResourceId string = ''

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${userAssignedIdentityResourceId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_17:Publishers authenticate with Entra ID bearer tokens, not client certificates.
    // checkov:skip=CKV_AZURE_222:Publishers and Event Grid call the app over the internet (no VNet in this baseline); every API call needs an Entra ID token.
    // checkov:skip=CKV_AZURE_212:Flex Consumption scales to zero; no minimum instance count at idle.
    // checkov:skip=CKV_AZURE_78:Flex Consumption rejects siteConfig.ftpsState (ARM error 51021); FTP is disabled by the ftp basicPublishingCredentialsPolicies resource below.
    // checkov:skip=CKV_AZURE_213:App Service health check is not used on Flex Consumption (scale-to-zero, per-function scaling); availability is watched by the function-errors alert.
    serverFarmId: serverFarmResourceId
    // Key Vault references in app settings (gateway passwords, registry secret) resolve with this identity.
    keyVaultReferenceIdentity: userAssignedIdentityResourceId
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: userAssignedIdentityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      // No ftpsState: Flex Consumption rejects it (FTP is off through basicPublishingCredentialsPolicies below).
      remoteDebuggingEnabled: false
      appSettings: [
        for setting in items(appSettings): {
          name: setting.key
          value: setting.value
        }
      ]
      cors: {
        allowedOrigins: []
      }
    }
  }
}

resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource functionAppDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(diagnosticWorkspaceResourceId)) {
  name: 'to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: diagnosticWorkspaceResourceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

@description('The resource ID of the function app.')
output resourceId string = functionApp.id

@description('The name of the function app.')
output name string = functionApp.name

@description('The default host name of the function app.')
output defaultHostName string = functionApp.properties.defaultHostName
