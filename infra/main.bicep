metadata name = 'Herald'
metadata description = 'Herald on Azure: Flex Consumption function app with a user-assigned managed identity, Table Storage, Service Bus, Communication Services, Event Grid, Key Vault and Azure Monitor. Identity only: no keys or connection strings.'

targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Parameters (azd maps them from the environment in main.parameters.json)
// ---------------------------------------------------------------------------------------------

@description('Required. Name of the azd environment; used in resource names and the azd-env-name tag.')
@minLength(1)
@maxLength(40)
param environmentName string

@description('Required. Azure region for the resources (Flex Consumption must be offered there).')
param location string

@description('Optional. Object ID of the deploying user or group; gets data-plane roles for troubleshooting. Empty: none.')
param principalId string = ''

@description('Optional. Principal type of principalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Optional. Microsoft Entra tenant that issues publisher tokens. Defaults to the deployment tenant.')
param authTenantId string = tenant().tenantId

@description('Required. Audience publishers\' tokens must carry: the Application ID URI of Herald\'s app registration (api://...).')
param authAudience string

@description('Optional. Expected token issuer. Empty: the v2.0 issuer of authTenantId (the app registration must issue v2 access tokens).')
param authIssuer string = ''

@description('Optional. Where a caller\'s Herald identity comes from: mapped (Entra ID: the token\'s account, tid + oid, in Herald\'s identities table, kept through /api/v1/admin/identities) or token (the token\'s sub, for an issuer that puts a Herald identity there).')
@allowed(['mapped', 'token'])
param authIdentities string = 'mapped'

// The console's sign-in (docs/deploy.md): infra/scripts/console-app-registration.sh registers the
// console and sets these through azd (HERALD_CONSOLE_AUTHORITY, _CLIENT_ID, _SCOPES).
@description('Optional. OpenID authority the console signs people in with. Empty: the token issuer (Entra ID v2.0: https://login.microsoftonline.com/<tenant>/v2.0).')
param consoleAuthority string = ''

@description('Optional. Client id of the console\'s app registration (a single-page application). Empty: herald-console, which Entra ID does not know, so sign-in fails until it is set.')
param consoleClientId string = ''

@description('Optional. Scopes the console asks for, space-separated, with the API\'s identifier URI. Empty: openid profile offline_access and authAudience\'s events.publish, events.read, events.subscribe and notifications.order.')
param consoleScopes string = ''

@description('Optional. Days an event is kept and readable.')
@minValue(1)
param eventRetentionDays int = 90

@description('Optional. Age in seconds after which the outbox sweeper re-dispatches rows whose dispatch did not complete.')
@minValue(10)
param outboxGraceSeconds int = 60

@description('Optional. Seconds one webhook request may take before it counts as failed.')
@minValue(1)
@maxValue(230)
param webhookTimeoutSeconds int = 30

@description('Optional. Seconds an endpoint\'s circuit breaker stays open after consecutive failures before a trial request (doubling each time it opens again, up to 10 minutes).')
@minValue(1)
@maxValue(600)
param circuitOpenSeconds int = 30

@description('Optional. Delays between delivery attempts in seconds, comma-separated; the last repeats (Event Grid\'s schedule by default).')
param retryScheduleSeconds string = '10,30,60,300,600,1800,3600,10800,21600,43200'

@description('Optional. Hours a delivery is retried before it is dead-lettered.')
@minValue(1)
param retryHorizonHours int = 24

@description('Optional. Days of uninterrupted delivery failures after which a subscription is disabled.')
@minValue(1)
param disableAfterDays int = 5

@description('Optional. Days the delivery log keeps each attempt.')
@minValue(1)
param deliveryLogDays int = 14

@description('Optional. Herald\'s public URL (the function app\'s host name unless a custom domain fronts it).')
param publicBaseUrl string = ''

@description('Optional. Default SMS sender (number or alphanumeric id) when an order names none.')
param smsSender string = 'Herald'

@description('Optional. SMS adapter: acs (Communication Services SMS) or link (a LINK Mobility-style HTTP gateway).')
@allowed(['acs', 'link'])
param smsGateway string = 'acs'

@description('Optional. Send URL of the LINK Mobility-style gateway (smsGateway link).')
param linkSmsUrl string = ''

@description('Optional. Basic-auth user of the LINK gateway.')
param linkSmsUsername string = ''

@description('Optional. Basic-auth password of the LINK gateway (smsGateway link). Stored as the Key Vault secret link-sms-password; empty: set that secret in the vault yourself.')
@secure()
param linkSmsPassword string = ''

@description('Optional. Body format of the LINK gateway: json or xml.')
@allowed(['json', 'xml'])
param linkSmsFormat string = 'json'

@description('Optional. User name the SMS gateway sends with delivery reports (HTTP basic).')
param smsReportUsername string = ''

@description('Optional. Password the SMS gateway sends with delivery reports (with smsReportUsername). Stored as the Key Vault secret sms-report-password.')
@secure()
param smsReportPassword string = ''

@description('Optional. Base URL of an external contact registry; empty uses the contacts table.')
param contactRegistryUrl string = ''

@description('Optional. OAuth authority for the contact registry token, e.g. https://login.microsoftonline.com/<tenant>.')
param contactRegistryAuthority string = ''

@description('Optional. Client id Herald uses for the contact registry token.')
param contactRegistryClientId string = ''

@description('Optional. Client secret for the contact registry token (with contactRegistryUrl). Stored as the Key Vault secret contact-registry-client-secret.')
@secure()
param contactRegistryClientSecret string = ''

@description('Optional. Scope of the contact registry token, e.g. api://registry/.default.')
param contactRegistryScope string = ''

@description('Optional. Events a publisher may publish per second and instance.')
@minValue(1)
param publishRatePerSecond int = 2000

@description('Optional. Events a publisher may publish at once after a quiet spell.')
@minValue(1000)
param publishBurst int = 20000

@description('Optional. Notifications an orderer may order per minute (a token bucket, as GOV.UK Notify\'s 3,000 a minute).')
@minValue(1)
param notificationsPerMinute int = 3000

@description('Optional. Notifications an orderer may order per UTC day (GOV.UK Notify: 250,000).')
@minValue(1)
param notificationsPerDay int = 250000

@description('Optional. Authorization: local (Herald\'s policies and roles) or pdp (an external policy decision point).')
@allowed(['local', 'pdp'])
param authorization string = 'local'

@description('Optional. URL of the external policy decision point (authorization pdp).')
param pdpUrl string = ''

@description('Optional. OAuth authority for the decision point token.')
param pdpAuthority string = ''

@description('Optional. Client id for the decision point token.')
param pdpClientId string = ''

@description('Optional. Client secret for the decision point token (authorization pdp). Stored as the Key Vault secret pdp-client-secret.')
@secure()
param pdpClientSecret string = ''

@description('Optional. Scope of the decision point token.')
param pdpScope string = ''

@description('Optional. Create the Event Grid subscriptions to the delivery-report functions. Event Grid checks that each function exists, so this is false on the first provision and set by the postdeploy hook once the functions are listed.')
param deployEventSubscriptions bool = false

@description('Optional. Create the custom Event Grid topic whose events Herald ingests (through the events-eventgrid queue).')
param enableCustomTopic bool = false

@description('Optional. Identity the custom topic\'s events are published as (org:<number> or system:<id>); resource policies must list it as a publisher. Empty: ingestion refuses every event.')
param eventGridPublisher string = ''

@description('Optional. Data location of Communication Services and the email service.')
@allowed([
  'Africa'
  'Asia Pacific'
  'Australia'
  'Brazil'
  'Canada'
  'Europe'
  'France'
  'Germany'
  'India'
  'Japan'
  'Korea'
  'Norway'
  'Switzerland'
  'UAE'
  'UK'
  'United States'
])
param communicationDataLocation string = 'Europe'

@description('Optional. Custom email domain (for example notify.example.gov). Empty: an Azure-managed *.azurecomm.net domain.')
param emailCustomDomainName string = ''

@description('Optional. Storage SKU (geo-zone-redundant by default; Standard_ZRS where GZRS is not offered).')
param storageSkuName string = 'Standard_GZRS'

@description('Optional. Key Vault SKU; premium makes the subscription-secret key HSM-backed.')
@allowed([
  'standard'
  'premium'
])
param keyVaultSkuName string = 'standard'

@description('Optional. Maximum instances of the function app (Flex Consumption accepts 40 to 1000).')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Optional. Comma-separated e-mail addresses for alerts. Empty: alerts show in the portal only.')
param alertEmailAddresses string = ''

// ---------------------------------------------------------------------------------------------
// What the app uses. tests/infra/test_consistency.py compares these with function_app.py and
// local.settings.sample.json: add an entry here when the app binds a new queue or function.
// ---------------------------------------------------------------------------------------------

@description('Service Bus queues, one per pipeline stage (shared/composition/storage.py QUEUES); devhost reads the same file. Duplicate detection where the sender re-sends with a deterministic message id (the outbox sweep re-dispatches to events-inbound).')
var serviceBusQueues = loadJsonContent('service-bus-queues.json')

var serviceBusQueueNames = [for queue in serviceBusQueues: queue.name]

@description('Queue the custom Event Grid topic delivers CloudEvents to (a Service Bus trigger ingests them).')
var eventGridIngestQueueName = 'events-eventgrid'

@description('Tables Herald stores its data in (shared/composition/storage.py TABLES).')
var storageTables = [
  'events'
  'eventresources'
  'heraldstate'
  'subscriptions'
  'subscriptionowners'
  'deadletters'
  'backfills'
  'orderedlanes'
  'notificationorders'
  'notifications'
  'notificationreports'
  'notificationstate'
  'contacts'
  'policies'
  'roles'
  'identities'
  'sendergrants'
  'notificationusage'
  'publishlimits'
]

@description('Event Grid subscriptions on the Communication Services system topic: one per Event Grid-triggered function for delivery reports.')
var communicationEventSubscriptions = [
  {
    name: 'email-delivery-reports'
    functionName: 'email_delivery_report'
    includedEventTypes: ['Microsoft.Communication.EmailDeliveryReportReceived']
  }
  {
    name: 'sms-delivery-reports'
    functionName: 'sms_delivery_report'
    includedEventTypes: ['Microsoft.Communication.SMSDeliveryReportReceived']
  }
]

@description('Functions the delivery-report subscriptions push to, comma-separated: the postdeploy hook waits until each is listed before it creates the subscriptions.')
var eventGridFunctionNames = [for subscription in communicationEventSubscriptions: subscription.functionName]

// ---------------------------------------------------------------------------------------------
// Names, roles
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'herald'
}
var deploymentContainerName = 'app-package'
// Events Event Grid could not deliver (30 attempts or 24 hours), one blob each.
var eventGridDeadLetterContainerName = 'eventgrid-deadletters'
var keyVaultName = 'kv-herald-${resourceToken}'
var issuer = empty(authIssuer) ? '${environment().authentication.loginEndpoint}${authTenantId}/v2.0' : authIssuer
// Entra ID scopes name their API; admin is left out: a consented delegated scope is in every user's token.
var defaultConsoleScopes = 'openid profile offline_access ${authAudience}/events.publish ${authAudience}/events.read ${authAudience}/events.subscribe ${authAudience}/notifications.order'
var openIdMetadataUrl = '${environment().authentication.loginEndpoint}${authTenantId}/v2.0/.well-known/openid-configuration'
var alertEmails = empty(alertEmailAddresses) ? [] : split(replace(alertEmailAddresses, ' ', ''), ',')

// Built-in role definition IDs.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
}

var hasUser = !empty(principalId)

// Role assignments: the function app's identity, and optionally the deploying user (principalId).
var storageRoleAssignments = concat(identityStorageRoles, userStorageRoles)
var identityStorageRoles = [
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.storageBlobDataOwner
  }
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.storageTableDataContributor
  }
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.storageQueueDataContributor
  }
]
var userStorageRoles = hasUser ? [
  {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.storageTableDataContributor
  }
  {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.storageQueueDataContributor
  }
] : []

// The deploying user gets send and receive on the whole namespace, for troubleshooting.
var serviceBusRoleAssignments = userServiceBusRoles
// The app's identity: Data Owner on each queue, which the Functions docs list for the Service Bus trigger.
// Owner's Manage rights let the scale controller read queue lengths (with Listen only it scales out
// slowly and blindly); it also covers sending, so no Sender or Receiver role is needed besides.
var identityServiceBusQueueRole = {
  principalId: identity.outputs.principalId
  principalType: 'ServicePrincipal'
  roleDefinitionId: roles.serviceBusDataOwner
}
var userServiceBusRoles = hasUser ? [
  {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.serviceBusDataSender
  }
  {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.serviceBusDataReceiver
  }
] : []

var keyVaultRoleAssignments = concat(identityKeyVaultRoles, userKeyVaultRoles)
var identityKeyVaultRoles = concat(identityKeyVaultKeyRoles, identityKeyVaultSecretRoles)
var identityKeyVaultKeyRoles = [
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.keyVaultCryptoUser
  }
]
// Resolves the Key Vault references among the app settings, only when a feature uses one.
var identityKeyVaultSecretRoles = empty(keyVaultReferenceSettings) ? [] : [
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.keyVaultSecretsUser
  }
]
var userKeyVaultRoles = hasUser ? [
  {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.keyVaultCryptoUser
  }
] : []

// Sending email/SMS with a managed identity: no narrower data-plane role is documented.
var communicationRoleAssignments = [
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.contributor
  }
]

var applicationInsightsRoleAssignments = [
  {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.monitoringMetricsPublisher
  }
]

// Herald does not publish to the custom topic; only the deploying user may, to test ingestion.
var customTopicRoleAssignments = hasUser ? [
  {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: roles.eventGridDataSender
  }
] : []

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/managed-identity/user-assigned-identity.bicep' = {
  name: 'identity'
  scope: resourceGroup
  params: {
    name: 'id-herald-${resourceToken}'
    location: location
    tags: tags
  }
}

module workspace 'modules/operational-insights/workspace.bicep' = {
  name: 'workspace'
  scope: resourceGroup
  params: {
    name: 'log-herald-${resourceToken}'
    location: location
    tags: tags
  }
}

module appInsights 'modules/insights/component.bicep' = {
  name: 'app-insights'
  scope: resourceGroup
  params: {
    name: 'appi-herald-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: workspace.outputs.resourceId
    roleAssignments: applicationInsightsRoleAssignments
  }
}

module storage 'modules/storage/storage-account.bicep' = {
  name: 'storage'
  scope: resourceGroup
  params: {
    name: 'stherald${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    blobContainerNames: [
      deploymentContainerName
      eventGridDeadLetterContainerName
    ]
    tableNames: storageTables
    diagnosticWorkspaceResourceId: workspace.outputs.resourceId
    roleAssignments: storageRoleAssignments
  }
}

module serviceBus 'modules/service-bus/namespace.bicep' = {
  name: 'service-bus'
  scope: resourceGroup
  params: {
    name: 'sb-herald-${resourceToken}'
    location: location
    tags: tags
    queues: serviceBusQueues
    diagnosticWorkspaceResourceId: workspace.outputs.resourceId
    roleAssignments: serviceBusRoleAssignments
    queueRoleAssignments: [for queueName in serviceBusQueueNames: union(identityServiceBusQueueRole, { queueName: queueName })]
  }
}

module keyVault 'modules/key-vault/vault.bicep' = {
  name: 'key-vault'
  scope: resourceGroup
  params: {
    name: keyVaultName
    location: location
    tags: tags
    skuName: keyVaultSkuName
    diagnosticWorkspaceResourceId: workspace.outputs.resourceId
    roleAssignments: keyVaultRoleAssignments
    // A secret only for a configured feature with a value given; the names match keyVaultReferenceSettings.
    secrets: {
      'link-sms-password': linkGatewayConfigured ? linkSmsPassword : ''
      'sms-report-password': smsReportConfigured ? smsReportPassword : ''
      'contact-registry-client-secret': contactRegistryConfigured ? contactRegistryClientSecret : ''
      'pdp-client-secret': pdpConfigured ? pdpClientSecret : ''
    }
  }
}

module emailService 'modules/communication/email-service.bicep' = {
  name: 'email-service'
  scope: resourceGroup
  params: {
    name: 'ecs-herald-${resourceToken}'
    dataLocation: communicationDataLocation
    tags: tags
    customDomainName: emailCustomDomainName
  }
}

module communication 'modules/communication/communication-service.bicep' = {
  name: 'communication'
  scope: resourceGroup
  params: {
    name: 'acs-herald-${resourceToken}'
    dataLocation: communicationDataLocation
    tags: tags
    linkedDomainResourceIds: [
      emailService.outputs.domainResourceId
    ]
    roleAssignments: communicationRoleAssignments
  }
}

module plan 'modules/web/serverfarm.bicep' = {
  name: 'plan'
  scope: resourceGroup
  params: {
    name: 'plan-herald-${resourceToken}'
    location: location
    tags: tags
  }
}

// Features whose secret Herald reads from a Key Vault reference. A reference is set only with its
// feature: an unresolved one would leave the literal @Microsoft.KeyVault(...) text in the setting.
var linkGatewayConfigured = smsGateway == 'link'
var smsReportConfigured = !empty(smsReportUsername)
var contactRegistryConfigured = !empty(contactRegistryUrl)
var pdpConfigured = authorization == 'pdp'
var keyVaultReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName='
var keyVaultReferenceSettings = union(linkSmsPasswordSetting, smsReportPasswordSetting, contactRegistrySecretSetting, pdpSecretSetting)
var linkSmsPasswordSetting = linkGatewayConfigured ? { HERALD_LINK_SMS_PASSWORD: '${keyVaultReference}link-sms-password)' } : {}
var smsReportPasswordSetting = smsReportConfigured ? { HERALD_SMS_REPORT_PASSWORD: '${keyVaultReference}sms-report-password)' } : {}
var contactRegistrySecretSetting = contactRegistryConfigured ? { HERALD_CONTACT_REGISTRY_CLIENT_SECRET: '${keyVaultReference}contact-registry-client-secret)' } : {}
var pdpSecretSetting = pdpConfigured ? { HERALD_PDP_CLIENT_SECRET: '${keyVaultReference}pdp-client-secret)' } : {}

@description('App settings of the function app. Every Herald setting is documented in local.settings.sample.json (scope azure/both); the platform settings are listed in tests/infra/test_consistency.py.')
var functionAppSettings = union(functionAppBaseSettings, keyVaultReferenceSettings)

// Azure Monitor is configured by the app itself (configure_azure_monitor), so neither
// PYTHON_ENABLE_OPENTELEMETRY nor PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is set here.
var functionAppBaseSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  HERALD_MODE: 'azure'
  HeraldStorage__tableServiceUri: storage.outputs.tableEndpoint
  HeraldStorage__queueServiceUri: storage.outputs.queueEndpoint
  HeraldStorage__credential: 'managedidentity'
  HeraldStorage__clientId: identity.outputs.clientId
  HERALD_BUS: 'service-bus'
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identity.outputs.clientId
  HERALD_AUTH_ISSUER: issuer
  HERALD_AUTH_AUDIENCE: authAudience
  HERALD_AUTH_OPENID_METADATA_URL: openIdMetadataUrl
  HERALD_AUTH_IDENTITIES: authIdentities
  HERALD_CONSOLE_AUTHORITY: empty(consoleAuthority) ? issuer : consoleAuthority
  HERALD_CONSOLE_CLIENT_ID: consoleClientId
  HERALD_CONSOLE_SCOPES: empty(consoleScopes) ? defaultConsoleScopes : consoleScopes
  HERALD_EVENT_RETENTION_DAYS: string(eventRetentionDays)
  HERALD_OUTBOX_GRACE_SECONDS: string(outboxGraceSeconds)
  // The sweeps' timer schedule: the Functions host resolves %HERALD_SWEEP_SCHEDULE% in their triggers.
  HERALD_SWEEP_SCHEDULE: '0 * * * * *'
  HERALD_PUBLIC_BASE_URL: empty(publicBaseUrl) ? 'https://func-herald-${resourceToken}.azurewebsites.net' : publicBaseUrl
  HERALD_WEBHOOK_TIMEOUT_SECONDS: string(webhookTimeoutSeconds)
  HERALD_CIRCUIT_OPEN_SECONDS: string(circuitOpenSeconds)
  HERALD_RETRY_SCHEDULE_SECONDS: retryScheduleSeconds
  HERALD_RETRY_HORIZON_HOURS: string(retryHorizonHours)
  HERALD_DISABLE_AFTER_DAYS: string(disableAfterDays)
  HERALD_DELIVERY_LOG_DAYS: string(deliveryLogDays)
  HeraldCommunication__endpoint: communication.outputs.endpoint
  HeraldCommunication__credential: 'managedidentity'
  HeraldCommunication__clientId: identity.outputs.clientId
  HERALD_NOTIFICATIONS_EMAIL_SENDER: emailService.outputs.senderAddress
  HERALD_NOTIFICATIONS_SMS_SENDER: smsSender
  HERALD_SMS_GATEWAY: smsGateway
  HERALD_LINK_SMS_URL: linkSmsUrl
  HERALD_LINK_SMS_USERNAME: linkSmsUsername
  HERALD_LINK_SMS_FORMAT: linkSmsFormat
  HERALD_SMS_REPORT_USERNAME: smsReportUsername
  HERALD_CONTACT_REGISTRY_URL: contactRegistryUrl
  HERALD_CONTACT_REGISTRY_AUTHORITY: contactRegistryAuthority
  HERALD_CONTACT_REGISTRY_CLIENT_ID: contactRegistryClientId
  HERALD_CONTACT_REGISTRY_SCOPE: contactRegistryScope
  HERALD_PUBLISH_RATE_PER_SECOND: string(publishRatePerSecond)
  HERALD_PUBLISH_BURST: string(publishBurst)
  HERALD_NOTIFICATIONS_PER_MINUTE: string(notificationsPerMinute)
  HERALD_NOTIFICATIONS_PER_DAY: string(notificationsPerDay)
  HERALD_AUTHORIZATION: authorization
  HERALD_PDP_URL: pdpUrl
  HERALD_PDP_AUTHORITY: pdpAuthority
  HERALD_PDP_CLIENT_ID: pdpClientId
  HERALD_PDP_SCOPE: pdpScope
  HERALD_EVENTGRID_PUBLISHER: eventGridPublisher
  // Herald's own topic: refused as a subscription's destination.
  HERALD_EVENTGRID_TOPIC_ENDPOINT: enableCustomTopic ? customTopic!.outputs.endpoint : ''
  HERALD_SECRET_KEY_URI: keyVault.outputs.keyUri
}

module functionApp 'modules/web/function-app.bicep' = {
  name: 'function-app'
  scope: resourceGroup
  params: {
    name: 'func-herald-${resourceToken}'
    location: location
    tags: union(tags, {
      'azd-service-name': 'api'
    })
    serverFarmResourceId: plan.outputs.resourceId
    userAssignedIdentityResourceId: identity.outputs.resourceId
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    maximumInstanceCount: functionMaximumInstanceCount
    appSettings: functionAppSettings
    diagnosticWorkspaceResourceId: workspace.outputs.resourceId
  }
  // The app resolves its Key Vault references at start: the secrets and the role must exist first.
  dependsOn: [
    keyVault
  ]
}

module communicationEvents 'modules/event-grid/system-topic.bicep' = {
  name: 'communication-events'
  scope: resourceGroup
  params: {
    name: 'evgst-acs-herald-${resourceToken}'
    tags: tags
    sourceResourceId: communication.outputs.resourceId
    topicType: 'Microsoft.Communication.CommunicationServices'
    functionAppResourceId: functionApp.outputs.resourceId
    functionSubscriptions: communicationEventSubscriptions
    deploySubscriptions: deployEventSubscriptions
    deadLetterStorageAccountName: storage.outputs.name
    deadLetterContainerName: eventGridDeadLetterContainerName
    deadLetterRoleDefinitionId: roles.storageBlobDataContributor
  }
}

module customTopic 'modules/event-grid/topic.bicep' = if (enableCustomTopic) {
  name: 'custom-topic'
  scope: resourceGroup
  params: {
    name: 'evgt-herald-${resourceToken}'
    location: location
    tags: tags
    roleAssignments: customTopicRoleAssignments
    serviceBusNamespaceName: serviceBus.outputs.name
    serviceBusQueueName: eventGridIngestQueueName
    deliveryRoleDefinitionId: roles.serviceBusDataSender
    deadLetterStorageAccountName: storage.outputs.name
    deadLetterContainerName: eventGridDeadLetterContainerName
    deadLetterRoleDefinitionId: roles.storageBlobDataContributor
  }
}

module workbook 'modules/insights/workbook.bicep' = {
  name: 'workbook'
  scope: resourceGroup
  params: {
    displayName: 'Herald (${environmentName})'
    location: location
    tags: tags
    applicationInsightsResourceId: appInsights.outputs.resourceId
    workspaceResourceId: workspace.outputs.resourceId
  }
}

// Topics whose dead-lettered events raise an alert.
var communicationEventsAlertTopics = [
  {
    name: 'acs'
    resourceId: communicationEvents.outputs.resourceId
    type: 'Microsoft.EventGrid/systemTopics'
  }
]
var customTopicAlertTopics = enableCustomTopic ? [
  {
    name: 'custom'
    resourceId: customTopic!.outputs.resourceId
    type: 'Microsoft.EventGrid/topics'
  }
] : []

module alerts 'modules/insights/alerts.bicep' = {
  name: 'alerts'
  scope: resourceGroup
  params: {
    namePrefix: 'herald-${environmentName}'
    location: location
    tags: tags
    applicationInsightsResourceId: appInsights.outputs.resourceId
    serviceBusNamespaceResourceId: serviceBus.outputs.resourceId
    eventGridTopics: concat(communicationEventsAlertTopics, customTopicAlertTopics)
    alertEmailAddresses: alertEmails
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment: `azd env get-values`)
// ---------------------------------------------------------------------------------------------

@description('Resource group of the environment.')
output AZURE_RESOURCE_GROUP string = resourceGroup.name

@description('Function app name.')
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Base URL of Herald\'s API.')
output HERALD_API_URL string = 'https://${functionApp.outputs.defaultHostName}'

@description('Token audience publishers request (az account get-access-token --resource ...).')
output HERALD_AUTH_AUDIENCE string = authAudience

@description('Client ID of the function app\'s managed identity.')
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId

@description('Storage table endpoint.')
output HERALD_TABLE_ENDPOINT string = storage.outputs.tableEndpoint

@description('Service Bus namespace host name.')
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace

@description('Communication Services endpoint (to wire as an app setting when the notification functions land).')
output ACS_ENDPOINT string = communication.outputs.endpoint

@description('Sender address of the email domain.')
output ACS_EMAIL_SENDER string = emailService.outputs.senderAddress

@description('Key URI of the subscription-secret encryption key (without version).')
output KEY_VAULT_KEY_URI string = keyVault.outputs.keyUri

@description('Custom Event Grid topic endpoint (empty when disabled).')
output EVENT_GRID_TOPIC_ENDPOINT string = enableCustomTopic ? customTopic!.outputs.endpoint : ''

@description('Application Insights resource ID.')
output APPLICATIONINSIGHTS_RESOURCE_ID string = appInsights.outputs.resourceId

@description('Workbook resource ID.')
output HERALD_WORKBOOK_ID string = workbook.outputs.resourceId

@description('Whether the delivery-report Event Grid subscriptions were created in this provision.')
output HERALD_EVENT_SUBSCRIPTIONS bool = deployEventSubscriptions

@description('Functions the delivery-report subscriptions target, comma-separated (the postdeploy hook waits for them).')
output HERALD_EVENT_GRID_FUNCTIONS string = join(eventGridFunctionNames, ',')

@description('Blob container that holds events Event Grid could not deliver.')
output HERALD_EVENT_GRID_DEAD_LETTER_CONTAINER string = '${storage.outputs.blobEndpoint}${eventGridDeadLetterContainerName}'
