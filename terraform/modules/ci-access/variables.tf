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
  description = "CircleCI project whose jobs may present tokens (the provider's attribute condition)."
  type        = string
}

variable "circleci_deploy_context_id" {
  description = "Id of this environment's CircleCI deploy context (gcp-<env>): only jobs on master running with it may impersonate the deploy account."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f-]{36}$", var.circleci_deploy_context_id))
    error_message = "circleci_deploy_context_id must be the CircleCI context's UUID (Organization Settings > Contexts)."
  }
}

variable "repository_location" {
  description = "Location of the Artifact Registry repository CI pushes to."
  type        = string
}

variable "repository_id" {
  description = "Artifact Registry repository CI pushes to."
  type        = string
}

variable "promote_readers" {
  description = "Deploy service accounts of the environments that promote from this one (production's, in staging): each gets Artifact Registry reader on this repository and container.clusterViewer, reader roles only."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for email in var.promote_readers :
      can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\\.iam\\.gserviceaccount\\.com$", email))
    ])
    error_message = "promote_readers must be service account emails (NAME@PROJECT.iam.gserviceaccount.com): another environment's deploy account, e.g. ferry-ci@ferry-production.iam.gserviceaccount.com."
  }

  validation {
    condition = alltrue([
      for email in var.promote_readers : !endswith(email, "@${var.project_id}.iam.gserviceaccount.com")
    ])
    error_message = "promote_readers names accounts of other environments' projects: this environment's own accounts already have what they need here."
  }
}

variable "manages_signing" {
  description = "Whether this environment has the signing key and Binary Authorization (terraform/modules/signing and binary-authorization, production's): Terraform's apply identity then gets what managing them takes, and the plan identity the matching viewer roles. False elsewhere, where those accounts get nothing extra."
  type        = bool
  default     = false
}

variable "node_service_account_email" {
  description = "The service account the cluster's node pools run as (gke-cluster's node_service_account): Terraform's apply identity may act as it, and as no other."
  type        = string
}

variable "pool_id" {
  description = "Workload identity pool id."
  type        = string
  default     = "circleci"
}

variable "terraform_identity" {
  description = "Terraform's CI identities: the CircleCI context whose master jobs may apply (gcp-terraform-<env>), the one whose jobs on any branch may plan read-only (gcp-terraform-plan-<env>), and the GCS bucket holding this environment's state."
  type = object({
    circleci_apply_context_id = string
    circleci_plan_context_id  = string
    state_bucket              = string
  })

  validation {
    condition = alltrue([
      for id in [var.terraform_identity.circleci_apply_context_id, var.terraform_identity.circleci_plan_context_id] :
      can(regex("^[0-9a-f-]{36}$", id))
    ])
    error_message = "terraform_identity's context ids must be CircleCI context UUIDs (Organization Settings > Contexts)."
  }

  validation {
    condition     = var.terraform_identity.circleci_apply_context_id != var.terraform_identity.circleci_plan_context_id
    error_message = "The apply and plan contexts must differ: a branch job with the plan context would otherwise hold the apply identity's context too."
  }
}
