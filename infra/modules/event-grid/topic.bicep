metadata name = 'Event Grid custom topic'
metadata description = 'Optional custom topic whose CloudEvents Herald ingests through a Service Bus queue. Local (access key) auth is disabled: publishers need the EventGrid Data Sender role. The topic\'s own identity sends to the queue and writes dead-lettered events to blob storage.'

@description('Required. Name of the topic.')
param name string

@description('Optional. Location of the topic.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Optional. Role assignments on the topic: objects with `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param roleAssignments array = []

@description('Required. Service Bus namespace (in this resource group) that holds the delivery queue.')
param serviceBusNamespaceName string

@description('Required. Queue every event is delivered to, one event a message, CloudEvents schema.')
param serviceBusQueueName string

@description('Required. Role the topic\'s identity gets on that queue (Azure Service Bus Data Sender).')
param deliveryRoleDefinitionId string

@description('Optional. Event types to deliver; empty: all.')
param includedEventTypes array = []

@description('Required. Storage account (in this resource group) that receives dead-lettered events.')
param deadLetterStorageAccountName string

@description('Required. Blob container in that account for dead-lettered events.')
param deadLetterContainerName string

@description('Required. Role the topic\'s identity gets on the dead-letter container (Storage Blob Data Contributor).')
param deadLetterRoleDefinitionId string

@description('Optional. Event Grid delivery attempts before an event is dead-lettered.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Optional. Event time to live in minutes; older undelivered events are dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // Delivers to Service Bus and dead-letters to blob storage, neither of which accepts keys here.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    // checkov:skip=CKV_AZURE_193:Publishers reach the topic over the internet (no VNet in this baseline); local auth is disabled, so each publish needs an Entra ID token and the EventGrid Data Sender role.
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource deliveryQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: namespace
  name: serviceBusQueueName
}

resource deliverySender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deliveryQueue.id, topic.id, deliveryRoleDefinitionId)
  scope: deliveryQueue
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', deliveryRoleDefinitionId)
  }
}

resource deadLetterAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: deadLetterStorageAccountName
}

resource deadLetterBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: deadLetterAccount
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: deadLetterBlobService
  name: deadLetterContainerName
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, topic.id, deadLetterRoleDefinitionId)
  scope: deadLetterContainer
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', deadLetterRoleDefinitionId)
  }
}

// The queue exists from the first provision, so this subscription needs no code deploy first.
resource ingestSubscription 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'ingest'
  properties: {
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'ServiceBusQueue'
        properties: {
          resourceId: deliveryQueue.id
        }
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      includedEventTypes: empty(includedEventTypes) ? null : includedEventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterAccount.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
  dependsOn: [
    deliverySender
    deadLetterWriter
  ]
}

resource topicRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in roleAssignments: {
    name: guid(topic.id, assignment.principalId, assignment.roleDefinitionId)
    scope: topic
    properties: {
      principalId: assignment.principalId
      principalType: assignment.principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
    }
  }
]

@description('The resource ID of the topic.')
output resourceId string = topic.id

@description('The name of the topic.')
output name string = topic.name

@description('The publish endpoint of the topic.')
output endpoint string = topic.properties.endpoint
