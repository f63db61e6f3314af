variable "project_id" {
  description = "GCP project CI deploys to."
  type        = string
}

variable "circleci_org_id" {
  description = "CircleCI organization id (Organization Settings > Overview); the OIDC issuer is https://oidc.circleci.com/org/<id>."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f-]{36}$", var.circleci_org_id))
    error_message = "circleci_org_id must be the organization's UUID."
  }
}

variable "circleci_project_id" {
  description = "CircleCI project id allowed to impersonate the CI service account."
  type        = string
}

variable "repository_location" {
  description = "Location of the Artifact Registry repository CI pushes to."
  type        = string
}

variable "repository_id" {
  description = "Artifact Registry repository CI pushes to."
  type        = string
}

variable "pool_id" {
  description = "Workload identity pool id."
  type        = string
  default     = "circleci"
}

variable "terraform_identity" {
  description = "Create the service account CircleCI's terraform jobs impersonate: the CircleCI context whose jobs may use it, and the GCS bucket holding this environment's state. null creates nothing."
  type = object({
    circleci_context_id = string
    state_bucket        = string
  })
  default = null

  validation {
    condition     = var.terraform_identity == null || can(regex("^[0-9a-f-]{36}$", var.terraform_identity.circleci_context_id))
    error_message = "terraform_identity.circleci_context_id must be the CircleCI context's UUID (Organization Settings > Contexts)."
  }
}
