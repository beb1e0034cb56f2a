metadata name = 'Service Bus namespace'
metadata description = 'Service Bus namespace with one queue per entry of `queues`; local (SAS) auth disabled, so senders and receivers need Entra ID roles.'

@description('Required. Name of the Service Bus namespace.')
param name string

@description('Optional. Location for the namespace.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Optional. SKU. Standard is the smallest tier with duplicate detection and scheduled messages.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

@description('Required. Queues: objects with `name`, `maxDeliveryCount`, `lockDuration` (ISO 8601), `requiresDuplicateDetection`, `duplicateDetectionHistoryTimeWindow`, `deadLetteringOnMessageExpiration` and `defaultMessageTimeToLive`. Other keys (such as `description`) are ignored.')
param queues array

@description('Optional. Role assignments on the namespace: objects with `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param roleAssignments array = []

@description('Optional. Resource ID of a Log Analytics workspace for diagnostic settings (metrics include DeadletteredMessages).')
param diagnosticWorkspaceResourceId string = ''

@description('Optional. Role assignments on single queues: objects with `queueName` (one of `queues`), `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param queueRoleAssignments array = []

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource namespaceQueues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for queue in queues: {
    parent: namespace
    name: queue.name
    properties: {
      maxDeliveryCount: queue.maxDeliveryCount
      lockDuration: queue.lockDuration
      requiresDuplicateDetection: queue.requiresDuplicateDetection
      duplicateDetectionHistoryTimeWindow: queue.duplicateDetectionHistoryTimeWindow
      deadLetteringOnMessageExpiration: queue.deadLetteringOnMessageExpiration
      defaultMessageTimeToLive: queue.defaultMessageTimeToLive
      requiresSession: false
      enablePartitioning: false
    }
  }
]

resource namespaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(diagnosticWorkspaceResourceId)) {
  name: 'to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: diagnosticWorkspaceResourceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource namespaceRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in roleAssignments: {
    name: guid(namespace.id, assignment.principalId, assignment.roleDefinitionId)
    scope: namespace
    properties: {
      principalId: assignment.principalId
      principalType: assignment.principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
    }
  }
]

resource assignedQueues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [
  for assignment in queueRoleAssignments: {
    parent: namespace
    name: assignment.queueName
  }
]

resource queueRoleAssignmentResources 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (assignment, index) in queueRoleAssignments: {
    name: guid(namespace.id, assignment.queueName, assignment.principalId, assignment.roleDefinitionId)
    scope: assignedQueues[index]
    properties: {
      principalId: assignment.principalId
      principalType: assignment.principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
    }
    dependsOn: [
      namespaceQueues
    ]
  }
]

@description('The resource ID of the namespace.')
output resourceId string = namespace.id

@description('The name of the namespace.')
output name string = namespace.name

@description('The fully qualified namespace host name, for `ServiceBusConnection__fullyQualifiedNamespace`.')
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
