variable "project_id" {
  description = "GCP project that owns the cluster."
  type        = string
}

variable "name" {
  description = "Cluster name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "The cluster name must be 2-40 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Region (regional cluster, recommended for production) or zone."
  type        = string
}

variable "network" {
  description = "VPC network; the default network unless overridden."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnetwork; the default subnetwork unless overridden."
  type        = string
  default     = "default"
}

variable "release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "min_kubernetes_version" {
  description = "Lowest Kubernetes minor the control plane may run: the one ferry's k8s-openapi feature and check-infra's kubernetes-validate target. The release channel upgrades beyond it."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.min_kubernetes_version))
    error_message = "min_kubernetes_version must be a minor version such as \"1.34\"."
  }
}

variable "machine_type" {
  description = "Machine type of the node pool."
  type        = string
  default     = "e2-standard-2"
}

variable "min_nodes" {
  description = "Minimum nodes per zone."
  type        = number
  default     = 1

  validation {
    condition     = var.min_nodes >= 0
    error_message = "min_nodes cannot be negative."
  }
}

variable "max_nodes" {
  description = "Maximum nodes per zone."
  type        = number
  default     = 3

  validation {
    condition     = var.max_nodes >= 1
    error_message = "max_nodes must be at least 1."
  }
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster. Keep true for production."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels for the cluster and its nodes."
  type        = map(string)
  default     = {}
}

variable "binary_authorization" {
  description = "Enforce the project's Binary Authorization policy on the cluster (PROJECT_SINGLETON_POLICY_ENFORCE). Turn it on together with the binary-authorization module, whose policy requires ferry's attestation."
  type        = bool
  default     = false
}
