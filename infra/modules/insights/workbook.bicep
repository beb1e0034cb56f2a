metadata name = 'Herald workbook'
metadata description = 'Azure Monitor workbook with Herald\'s charts: events published, deliveries by outcome, delivery latency, dead letters, notifications by status and function failures.'

@description('Required. Display name of the workbook.')
param displayName string

@description('Optional. Location for the workbook.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Required. Resource ID of Application Insights (custom metrics, requests).')
param applicationInsightsResourceId string

@description('Required. Resource ID of the Log Analytics workspace (Service Bus platform metrics via diagnostic settings).')
param workspaceResourceId string

var appInsightsChart = {
  queryType: 0
  resourceType: 'microsoft.insights/components'
  size: 0
  timeContextFromParameter: 'TimeRange'
  timeContext: {
    durationMs: 86400000
  }
}

var charts = [
  {
    name: 'events-published'
    title: 'Events published (by resource)'
    visualization: 'timechart'
    query: 'customMetrics | where name == "herald.events.published" | extend resource = tostring(customDimensions.resource) | summarize events = sum(valueSum) by resource, bin(timestamp, {TimeRange:grain})'
  }
  {
    name: 'deliveries'
    title: 'Webhook deliveries by outcome'
    visualization: 'barchart'
    query: 'customMetrics | where name == "herald.deliveries" | extend outcome = tostring(customDimensions.outcome) | summarize deliveries = sum(valueSum) by outcome, bin(timestamp, {TimeRange:grain})'
  }
  {
    name: 'delivery-latency'
    title: 'Delivery latency, seconds (average and maximum)'
    visualization: 'linechart'
    query: 'customMetrics | where name == "herald.delivery.duration" | summarize average = sum(valueSum) / sum(valueCount), maximum = max(valueMax) by bin(timestamp, {TimeRange:grain})'
  }
  {
    name: 'pipeline-hops'
    title: 'Time per pipeline hop, seconds (average: queued, matched, pushed)'
    visualization: 'linechart'
    query: 'customMetrics | where name == "herald.pipeline.hop.duration" | extend hop = tostring(customDimensions.hop) | summarize average = sum(valueSum) / sum(valueCount) by hop, bin(timestamp, {TimeRange:grain})'
  }
  {
    name: 'notifications'
    title: 'Notifications by channel and status'
    visualization: 'barchart'
    query: 'customMetrics | where name == "herald.notifications" | extend series = strcat(tostring(customDimensions.channel), " ", tostring(customDimensions.status)) | summarize notifications = sum(valueSum) by series, bin(timestamp, {TimeRange:grain})'
  }
  {
    name: 'herald-dead-letters'
    title: 'Messages Herald dead-lettered (by stage)'
    visualization: 'barchart'
    query: 'customMetrics | where name == "herald.dead_letters" | extend stage = tostring(customDimensions.stage) | summarize messages = sum(valueSum) by stage, bin(timestamp, {TimeRange:grain})'
  }
  {
    name: 'function-failures'
    title: 'Failed function invocations (by function)'
    visualization: 'timechart'
    query: 'requests | where success == false | summarize failures = count() by operation_Name, bin(timestamp, {TimeRange:grain})'
  }
]

var introItems = [
  {
    type: 1
    name: 'intro'
    content: {
      json: '## Herald\nPublishing, fan-out and notifications. Counters come from the `herald` OpenTelemetry meter; dead-letter queue depth comes from Service Bus. See docs/deploy.md for what each chart and alert means.'
    }
  }
  {
    type: 9
    name: 'parameters'
    content: {
      version: 'KqlParameterItem/1.0'
      parameters: [
        {
          id: 'b6a3b8c4-6f0e-4f55-9d0b-1f4b0f1f7a01'
          version: 'KqlParameterItem/1.0'
          name: 'TimeRange'
          label: 'Time range'
          type: 4
          isRequired: true
          value: {
            durationMs: 86400000
          }
          typeSettings: {
            selectableValues: [
              {
                durationMs: 3600000
              }
              {
                durationMs: 14400000
              }
              {
                durationMs: 86400000
              }
              {
                durationMs: 604800000
              }
              {
                durationMs: 2592000000
              }
            ]
          }
        }
      ]
    }
  }
]

var chartItems = [
  for chart in charts: {
    type: 3
    name: chart.name
    content: union(appInsightsChart, {
      version: 'KqlItem/1.0'
      title: chart.title
      query: chart.query
      visualization: chart.visualization
    })
  }
]

var serviceBusItems = [
  {
    type: 3
    name: 'service-bus-dead-letters'
    content: {
      version: 'KqlItem/1.0'
      title: 'Messages in dead-letter queues (Service Bus namespace; the alert splits by queue)'
      query: 'AzureMetrics | where ResourceProvider == "MICROSOFT.SERVICEBUS" and MetricName == "DeadletteredMessages" | summarize messages = max(Maximum) by Resource, bin(TimeGenerated, {TimeRange:grain})'
      visualization: 'timechart'
      queryType: 0
      resourceType: 'microsoft.operationalinsights/workspaces'
      crossComponentResources: [
        workspaceResourceId
      ]
      size: 0
      timeContextFromParameter: 'TimeRange'
      timeContext: {
        durationMs: 86400000
      }
    }
  }
]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat(introItems, chartItems, serviceBusItems)
  fallbackResourceIds: [
    applicationInsightsResourceId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2022-04-01' = {
  name: guid(resourceGroup().id, applicationInsightsResourceId, 'herald-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsResourceId
    serializedData: string(workbookContent)
    version: 'Notebook/1.0'
  }
}

@description('The resource ID of the workbook.')
output resourceId string = workbook.id
