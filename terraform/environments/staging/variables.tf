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

variable "max_nodes" {
  description = "Autoscaling ceiling per zone."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster."
  type        = bool
}
