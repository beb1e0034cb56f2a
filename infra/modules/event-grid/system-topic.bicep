metadata name = 'Event Grid system topic'
metadata description = 'System topic on an Azure resource (here: Communication Services delivery reports) with subscriptions that push to Event Grid-triggered functions (endpoint type AzureFunction: no webhook URL, no key in the template).'

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

@description('Optional. Event Grid delivery attempts before an event is dropped.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Optional. Event time to live in minutes.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: sourceResourceId
    topicType: topicType
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
    }
  }
]

@description('The resource ID of the system topic.')
output resourceId string = systemTopic.id

@description('The name of the system topic.')
output name string = systemTopic.name
