variable "project_id" {
  description = "GCP project of this environment."
  type        = string
}

variable "region" {
  description = "Region of the cluster and the registry."
  type        = string
}

variable "cluster_name" {
  description = "GKE cluster name."
  type        = string
}

variable "circleci_org_id" {
  description = "CircleCI organization id."
  type        = string
}

variable "circleci_project_id" {
  description = "CircleCI project id."
  type        = string
}

variable "circleci_deploy_context_id" {
  description = "Id of the CircleCI context gcp-staging: only master jobs running with it may impersonate the deploy account."
  type        = string
}

variable "circleci_terraform_context_id" {
  description = "Id of the CircleCI context gcp-terraform-staging: only master jobs running with it may impersonate Terraform's apply account."
  type        = string
}

variable "circleci_terraform_plan_context_id" {
  description = "Id of the CircleCI context gcp-terraform-plan-staging: jobs on any branch running with it may impersonate Terraform's read-only plan account."
  type        = string
}

variable "state_bucket" {
  description = "The state bucket; the same name as the backend's bucket in versions.tf (backends cannot read variables)."
  type        = string
}

variable "promote_readers" {
  description = "Deploy service accounts that promote from staging (production's, ferry-ci@PRODUCTION_PROJECT.iam.gserviceaccount.com): read-only access to staging's repository and cluster."
  type        = list(string)

  validation {
    condition     = alltrue([for email in var.promote_readers : startswith(email, "ferry-ci@")])
    error_message = "promote_readers names deploy accounts only (ferry-ci@PROJECT.iam.gserviceaccount.com, ci-access's account): no Terraform or other identity reads staging through it."
  }
}

variable "max_nodes" {
  description = "Autoscaling ceiling per zone."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster."
  type        = bool
}
