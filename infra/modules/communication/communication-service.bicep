metadata name = 'Azure Communication Services'
metadata description = 'Communication Services resource for email and SMS, linked to the email domain; local (access key) auth disabled where the API supports it.'

@description('Required. Name of the Communication Services resource.')
param name string

@description('Optional. Data location (not an Azure region).')
param dataLocation string = 'Europe'

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Optional. Resource IDs of email domains to link.')
param linkedDomainResourceIds array = []

@description('Optional. Role assignments on the resource: objects with `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param roleAssignments array = []

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: linkedDomainResourceIds
    disableLocalAuth: true
  }
}

resource communicationRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in roleAssignments: {
    name: guid(communicationService.id, assignment.principalId, assignment.roleDefinitionId)
    scope: communicationService
    properties: {
      principalId: assignment.principalId
      principalType: assignment.principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
    }
  }
]

@description('The resource ID of the Communication Services resource.')
output resourceId string = communicationService.id

@description('The name of the Communication Services resource.')
output name string = communicationService.name

@description('The endpoint for EmailClient/SmsClient with a token credential.')
output endpoint string = 'https://${communicationService.properties.hostName}'
