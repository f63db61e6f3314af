variable "project_id" {
  description = "GCP project that owns the repository."
  type        = string
}

variable "location" {
  description = "Artifact Registry location, e.g. europe-west1."
  type        = string
}

variable "repository_id" {
  description = "Repository name; images are LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE."
  type        = string
  default     = "ferry"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.repository_id))
    error_message = "repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "keep_recent" {
  description = "Tagged versions kept by the cleanup policy (older ones are deleted)."
  type        = number
  default     = 30
}
