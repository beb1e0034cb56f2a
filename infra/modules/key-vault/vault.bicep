metadata name = 'Key Vault with a key'
metadata description = 'RBAC-authorized Key Vault holding the key Herald uses to encrypt subscription secrets (wrap/unwrap with Key Vault Crypto User; the key never leaves the vault).'

@description('Required. Name of the Key Vault (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Optional. Location for the vault.')
param location string = resourceGroup().location

@description('Optional. Tags of the resource.')
param tags object = {}

@description('Optional. Vault SKU. Premium makes the key HSM-backed (RSA-HSM).')
@allowed([
  'standard'
  'premium'
])
param skuName string = 'standard'

@description('Optional. Name of the subscription-secret encryption key.')
param keyName string = 'subscription-secrets'

@description('Optional. Lifetime of a key version (ISO 8601): the rotation policy stamps this expiry on each version it creates.')
param keyLifetime string = 'P1Y'

@description('Optional. Age (ISO 8601) at which the rotation policy creates a new key version; shorter than keyLifetime, so a version is replaced before it expires.')
param keyRotateAfter string = 'P11M'

@description('Optional. Secrets to store, secret name to value. An empty value creates no secret (the feature is off, or the operator sets the secret in the vault).')
@secure()
param secrets object = {}

@description('Optional. Role assignments on the vault: objects with `principalId`, `roleDefinitionId` (GUID) and `principalType`.')
param roleAssignments array = []

@description('Optional. Resource ID of a Log Analytics workspace for diagnostic settings (audit log).')
param diagnosticWorkspaceResourceId string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109:Flex Consumption without VNet integration reaches the vault over its public endpoint; every call needs an Entra ID token and an RBAC role.
    // checkov:skip=CKV_AZURE_189:Same as CKV_AZURE_109: public network access is needed without VNet integration.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: skuName
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource key 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: keyName
  properties: {
    // checkov:skip=CKV_AZURE_40:The rotation policy sets each rotated version's expiry (expiryTime) and rotates the key at keyRotateAfter; a fixed exp cannot be re-deployed (KeyCreationParametersDidNotMatchExistingKey).
    // checkov:skip=CKV_AZURE_112:kty follows the skuName parameter (RSA-HSM on premium); the standard SKU cannot hold HSM keys, and checkov does not resolve the parameter.
    kty: skuName == 'premium' ? 'RSA-HSM' : 'RSA'
    keySize: 3072
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
    // No `exp` here: Key Vault refuses to change an existing key's creation parameters
    // (KeyCreationParametersDidNotMatchExistingKey), so an expiry computed at deployment time would fail
    // every provision after the first. The rotation policy bounds each version's life instead.
    attributes: {
      enabled: true
    }
    rotationPolicy: {
      attributes: {
        expiryTime: keyLifetime
      }
      lifetimeActions: [
        {
          action: {
            type: 'rotate'
          }
          trigger: {
            timeAfterCreate: keyRotateAfter
          }
        }
        {
          action: {
            type: 'notify'
          }
          trigger: {
            timeBeforeExpiry: 'P30D'
          }
        }
      ]
    }
  }
}

resource vaultSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for secret in items(secrets): if (!empty(secret.value)) {
    parent: vault
    name: secret.key
    properties: {
      // checkov:skip=CKV_AZURE_41:Partner credentials (gateway passwords, client secrets) expire when the partner rotates them; a new value is set with `azd env set` and a provision, or in the vault.
      value: secret.value
      contentType: 'text/plain'
    }
  }
]

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(diagnosticWorkspaceResourceId)) {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: diagnosticWorkspaceResourceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

resource vaultRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in roleAssignments: {
    name: guid(vault.id, assignment.principalId, assignment.roleDefinitionId)
    scope: vault
    properties: {
      principalId: assignment.principalId
      principalType: assignment.principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', assignment.roleDefinitionId)
    }
  }
]

@description('The resource ID of the vault.')
output resourceId string = vault.id

@description('The name of the vault.')
output name string = vault.name

@description('The vault URI.')
output uri string = vault.properties.vaultUri

@description('The key URI without version (clients follow rotation).')
output keyUri string = key.properties.keyUri
