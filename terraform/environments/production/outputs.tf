output "image_repository" {
  description = "`repository` for this environment in ferry.toml."
  value       = "${module.registry.image_prefix}/hello"
}

output "get_credentials" {
  description = "Writes the kubeconfig context ferry deploys through."
  value       = module.cluster.get_credentials
}

output "ci_service_account" {
  description = "GCP_SERVICE_ACCOUNT for the CircleCI context."
  value       = module.ci_access.service_account_email
}

output "ci_workload_identity_provider" {
  description = "GCP_WIP_PROVIDER for the three CircleCI contexts (gcp-production, gcp-terraform-production, gcp-terraform-plan-production)."
  value       = module.ci_access.workload_identity_provider
}

output "terraform_service_account" {
  description = "GCP_TERRAFORM_SERVICE_ACCOUNT for the CircleCI context gcp-terraform-production."
  value       = module.ci_access.terraform_service_account_email
}

output "terraform_plan_service_account" {
  description = "GCP_TERRAFORM_SERVICE_ACCOUNT for the CircleCI context gcp-terraform-plan-production (read-only)."
  value       = module.ci_access.terraform_plan_service_account_email
}

output "signing_key" {
  description = "`signing_key` for the production environment in ferry.toml."
  value       = module.signing.signing_key
}

output "binauthz" {
  description = "`binauthz` for the production environment in ferry.toml: the attestor and the note ferry ship attaches attestations to."
  value       = "{ attestor = \"${module.binary_authorization.attestor}\", note = \"${module.binary_authorization.note}\" }"
}

output "binauthz_attestor" {
  description = "The Binary Authorization attestor the production policy requires."
  value       = module.binary_authorization.attestor
}

output "binauthz_note" {
  description = "The Container Analysis note that attestations are attached to."
  value       = module.binary_authorization.note
}
