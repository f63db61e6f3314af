variable "project_id" {
  description = "GCP project whose Binary Authorization policy this is (the cluster's project)."
  type        = string
}

variable "attestor_name" {
  description = "Name of the attestor; its note is named ATTESTOR-note."
  type        = string
  default     = "ferry"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,59}$", var.attestor_name))
    error_message = "attestor_name must be 1-59 letters, digits, hyphens or underscores."
  }
}

variable "signing_crypto_key" {
  description = "The Cloud KMS key ferry signs with, projects/…/cryptoKeys/KEY (the signing module's crypto_key_id output)."
  type        = string
}

variable "signing_key_version" {
  description = "The key version whose public key the attestor trusts (ferry's signing_key names the same version)."
  type        = number
  default     = 1
}

variable "attestation_creator" {
  description = "The only account allowed to attach attestations to the note: CI's deploy account, the one that signs."
  type        = string
}

variable "creator_role_id" {
  description = "Id of the project's custom role holding containeranalysis.occurrences.create."
  type        = string
  default     = "ferryAttestationCreator"
}
