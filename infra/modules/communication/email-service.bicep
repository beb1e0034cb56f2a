metadata name = 'Email Communication Service with a domain'
metadata description = 'Email Communication Service and its sending domain (Azure-managed by default; a customer-managed domain needs DNS verification, see docs/deploy.md).'

@description('Required. Name of the Email Communication Service.')
param name string

@description('Optional. Data location of the email service (not an Azure region).')
param dataLocation string = 'Europe'

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Optional. Custom domain name (for example notify.example.gov). Empty uses an Azure-managed *.azurecomm.net domain.')
param customDomainName string = ''

@description('Optional. Local part of the sender address (`<username>@<domain>`).')
param senderUsername string = 'DoNotReply'

@description('Optional. Display name of the sender.')
param senderDisplayName string = 'Herald'

var managed = empty(customDomainName)

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource domain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: managed ? 'AzureManagedDomain' : customDomainName
  location: 'global'
  tags: tags
  properties: {
    domainManagement: managed ? 'AzureManaged' : 'CustomerManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource sender 'Microsoft.Communication/emailServices/domains/senderUsernames@2023-04-01' = if (!managed) {
  parent: domain
  name: toLower(senderUsername)
  properties: {
    username: senderUsername
    displayName: senderDisplayName
  }
}

@description('The resource ID of the email service.')
output resourceId string = emailService.id

@description('The resource ID of the domain, to link to Communication Services.')
output domainResourceId string = domain.id

@description('The sending domain (for an Azure-managed domain, the generated *.azurecomm.net name).')
output mailFromDomain string = domain.properties.mailFromSenderDomain

@description('The sender address.')
output senderAddress string = '${managed ? 'DoNotReply' : senderUsername}@${domain.properties.mailFromSenderDomain}'
