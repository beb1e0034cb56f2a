metadata name = 'Herald alert rules'
metadata description = 'Alerts: any dead-lettered message or Event Grid event, webhook delivery failure ratio, failed function invocations. An action group e-mails the given addresses.'

@description('Required. Prefix for alert rule names.')
param namePrefix string

@description('Optional. Location for the log alert rules.')
param location string = resourceGroup().location

@description('Optional. Tags of the resources.')
param tags object = {}

@description('Required. Resource ID of Application Insights.')
param applicationInsightsResourceId string

@description('Required. Resource ID of the Service Bus namespace.')
param serviceBusNamespaceResourceId string

@description('Optional. Event Grid topics whose dead-lettered events raise an alert: objects with `name` (short, for the rule name), `resourceId` and `type` (Microsoft.EventGrid/topics or Microsoft.EventGrid/systemTopics).')
param eventGridTopics array = []

@description('Optional. E-mail addresses to notify. Empty: the alerts fire in the portal only.')
param alertEmailAddresses array = []

@description('Optional. Delivery failure ratio (0-1) above which the delivery alert fires.')
param deliveryFailureRatioThreshold string = '0.2'

@description('Optional. Minimum number of delivery attempts in the window before the ratio is judged.')
param deliveryMinimumAttempts int = 20

var actionGroups = empty(alertEmailAddresses) ? [] : [actionGroup.id]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddresses)) {
  name: '${namePrefix}-ops'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'herald-ops'
    enabled: true
    emailReceivers: [
      for (address, index) in alertEmailAddresses: {
        name: 'email-${index}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

resource deadLetterAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-dead-letters'
  location: 'global'
  tags: tags
  properties: {
    description: 'A message is in a Service Bus dead-letter queue: a stage failed maxDeliveryCount times or the message expired. Inspect the queue\'s dead-letter sub-queue.'
    severity: 1
    enabled: true
    scopes: [
      serviceBusNamespaceResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered-messages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: [
      for groupId in actionGroups: {
        actionGroupId: groupId
      }
    ]
  }
}

resource eventGridDeadLetterAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for eventGridTopic in eventGridTopics: {
    name: '${namePrefix}-eventgrid-dead-letters-${eventGridTopic.name}'
    location: 'global'
    tags: tags
    properties: {
      description: 'Event Grid gave up delivering an event (30 attempts or 24 hours) and wrote it to the eventgrid-deadletters blob container. Open the container, read the deadLetterReason of the blob, fix the cause and re-publish the event.'
      severity: 1
      enabled: true
      scopes: [
        eventGridTopic.resourceId
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT5M'
      autoMitigate: true
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: 'dead-lettered-events'
            metricNamespace: eventGridTopic.type
            metricName: 'DeadLetteredCount'
            operator: 'GreaterThan'
            threshold: 0
            timeAggregation: 'Total'
          }
        ]
      }
      actions: [
        for groupId in actionGroups: {
          actionGroupId: groupId
        }
      ]
    }
  }
]

resource deliveryFailureAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-delivery-failure-ratio'
  location: location
  tags: tags
  properties: {
    displayName: '${namePrefix}: webhook delivery failure ratio'
    description: 'More than ${deliveryFailureRatioThreshold} of webhook delivery attempts in 15 minutes did not end as delivered: a subscriber is down or rejecting Herald.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "herald.deliveries" | extend outcome = tostring(customDimensions.outcome) | summarize total = sum(valueSum), failed = sumif(valueSum, outcome != "delivered") | where total >= ${deliveryMinimumAttempts} | extend ratio = failed / total | where ratio > ${deliveryFailureRatioThreshold}'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource functionErrorAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-function-errors'
  location: location
  tags: tags
  properties: {
    displayName: '${namePrefix}: function errors'
    description: 'A function invocation failed (an exception in a trigger, a 5xx from the API). Open the failures blade of Application Insights.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'requests | where success == false'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

@description('The resource IDs of the alert rules.')
output alertRuleResourceIds array = [
  deadLetterAlert.id
  deliveryFailureAlert.id
  functionErrorAlert.id
]

@description('The resource IDs of the Event Grid dead-letter alert rules, one per topic.')
output eventGridDeadLetterAlertResourceIds array = [for (eventGridTopic, index) in eventGridTopics: eventGridDeadLetterAlerts[index].id]
