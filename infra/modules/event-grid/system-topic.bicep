metadata name = 'Event Grid system topic'
metadata description = 'System topic on an Azure resource (here: Communication Services delivery reports) with subscriptions that push to Event Grid-triggered functions (endpoint type AzureFunction: no webhook URL, no key in the template). Events Event Grid gives up on are dead-lettered to a blob container with the topic\'s own identity.'

@description('Required. Name of the system topic.')
param name string

@description('Optional. Location of the system topic (`global` for Communication Services).')
param location string = 'global'

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Required. Resource ID of the source resource.')
param sourceResourceId string

@description('Required. Topic type, for example Microsoft.Communication.CommunicationServices.')
param topicType string

@description('Optional. Resource ID of the function app that receives the events.')
param functionAppResourceId string = ''

@description('Optional. Subscriptions: objects with `name`, `functionName` and `includedEventTypes`. Only created when `deploySubscriptions` is true, because Event Grid checks that each function exists.')
param functionSubscriptions array = []

@description('Optional. Create the subscriptions (set after the function code is deployed).')
param deploySubscriptions bool = false

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

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // Writes dead-lettered events to blob storage (shared keys are disabled there).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: sourceResourceId
    topicType: topicType
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
  name: guid(deadLetterContainer.id, systemTopic.id, deadLetterRoleDefinitionId)
  scope: deadLetterContainer
  properties: {
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', deadLetterRoleDefinitionId)
  }
}

resource subscriptions 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = [
  for subscription in functionSubscriptions: if (deploySubscriptions) {
    parent: systemTopic
    name: subscription.name
    properties: {
      destination: {
        endpointType: 'AzureFunction'
        properties: {
          resourceId: '${functionAppResourceId}/functions/${subscription.functionName}'
          maxEventsPerBatch: 1
          preferredBatchSizeInKilobytes: 64
        }
      }
      eventDeliverySchema: 'EventGridSchema'
      filter: {
        includedEventTypes: subscription.includedEventTypes
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
      deadLetterWriter
    ]
  }
]

@description('The resource ID of the system topic.')
output resourceId string = systemTopic.id

@description('The name of the system topic.')
output name string = systemTopic.name
