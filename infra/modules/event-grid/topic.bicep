metadata name = 'Event Grid custom topic'
metadata description = 'Optional custom topic whose events Herald ingests through an Event Grid-triggered function. Local (access key) auth is disabled: publishers need the EventGrid Data Sender role.'

@description('Required. Name of the topic.')
param name string

@description('Optional. Location of the topic.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Optional. Resource ID of the function app that receives the events.')
param functionAppResourceId string = ''

@description('Optional. Subscriptions: objects with `name`, `functionName` and `includedEventTypes` (empty array: all types). Only created when `deploySubscriptions` is true.')
param functionSubscriptions array = []

@description('Optional. Create the subscriptions (set after the function code is deployed).')
param deploySubscriptions bool = false

@description('Optional. Role assignments on the topic: objects with `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param roleAssignments array = []

@description('Optional. Event Grid delivery attempts before an event is dropped.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Optional. Event time to live in minutes.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_193:Publishers reach the topic over the internet (no VNet in this baseline); local auth is disabled, so each publish needs an Entra ID token and the EventGrid Data Sender role.
    // checkov:skip=CKV_AZURE_191:The topic sends to functions (endpoint type AzureFunction), which needs no identity; add one if dead-lettering to storage is added.
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource subscriptions 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = [
  for subscription in functionSubscriptions: if (deploySubscriptions) {
    parent: topic
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
      eventDeliverySchema: 'CloudEventSchemaV1_0'
      filter: {
        includedEventTypes: empty(subscription.includedEventTypes) ? null : subscription.includedEventTypes
      }
      retryPolicy: {
        maxDeliveryAttempts: maxDeliveryAttempts
        eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
      }
    }
  }
]

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
