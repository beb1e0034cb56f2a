metadata name = 'Application Insights component'
metadata description = 'Workspace-based Application Insights with local auth disabled: the function app ingests with its managed identity (Monitoring Metrics Publisher).'

@description('Required. Name of the Application Insights component.')
param name string

@description('Optional. Location for the component.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Required. Resource ID of the Log Analytics workspace.')
param workspaceResourceId string

@description('Optional. Role assignments on the component: objects with `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param roleAssignments array = []

resource component 'Microsoft.Insights/components@2020-02-02' = {
  name: name
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspaceResourceId
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource componentRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in roleAssignments: {
    name: guid(component.id, assignment.principalId, assignment.roleDefinitionId)
    scope: component
    properties: {
      principalId: assignment.principalId
      principalType: assignment.principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
    }
  }
]

@description('The resource ID of the component.')
output resourceId string = component.id

@description('The name of the component.')
output name string = component.name

@description('The connection string (ingestion endpoint and instrumentation key; not a credential while local auth is disabled).')
output connectionString string = component.properties.ConnectionString
