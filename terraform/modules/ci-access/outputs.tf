output "service_account_email" {
  description = "The CI service account (GCP_SERVICE_ACCOUNT in the CircleCI context)."
  value       = google_service_account.ci.email
}

output "workload_identity_provider" {
  description = "Full provider name (GCP_WIP_PROVIDER in each of the environment's CircleCI contexts)."
  value       = google_iam_workload_identity_pool_provider.circleci.name
}

output "terraform_service_account_email" {
  description = "Terraform's apply account (GCP_TERRAFORM_SERVICE_ACCOUNT in the gcp-terraform-<env> context)."
  value       = google_service_account.terraform.email
}

output "terraform_plan_service_account_email" {
  description = "Terraform's read-only plan account (GCP_TERRAFORM_SERVICE_ACCOUNT in the gcp-terraform-plan-<env> context)."
  value       = google_service_account.terraform_plan.email
}
