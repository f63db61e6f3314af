variable "project_id" {
  description = "GCP project that owns the key ring."
  type        = string
}

variable "location" {
  description = "Cloud KMS location, e.g. europe-west1."
  type        = string
}

variable "key_ring" {
  description = "Key ring name (key rings cannot be deleted, so pick it once)."
  type        = string
  default     = "ferry"
}

variable "signer_service_account" {
  description = "The only account allowed to sign: CI's deploy account."
  type        = string
}

variable "public_key_viewers" {
  description = "Other members allowed to read the public key, e.g. a Binary Authorization service agent."
  type        = list(string)
  default     = []
}
