metadata name = 'App Service plan (Flex Consumption)'
metadata description = 'A Linux Flex Consumption (FC1) plan: scales to zero, billed per execution.'

@description('Required. Name of the plan.')
param name string

@description('Optional. Location for the plan.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225:Flex Consumption scales to zero; zone redundancy needs always-ready instances in several zones, which is a cost decision per environment.
    reserved: true
  }
}

@description('The resource ID of the plan.')
output resourceId string = plan.id

@description('The name of the plan.')
output name string = plan.name
