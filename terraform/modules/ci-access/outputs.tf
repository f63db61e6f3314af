output "service_account_email" {
  description = "The CI service account (GCP_SERVICE_ACCOUNT in the CircleCI context)."
  value       = google_service_account.ci.email
}

output "workload_identity_provider" {
  description = "Full provider name (GCP_WIP_PROVIDER in the CircleCI context)."
  value       = google_iam_workload_identity_pool_provider.circleci.name
}

output "terraform_service_account_email" {
  description = "Terraform's CI service account (GCP_TERRAFORM_SERVICE_ACCOUNT in the gcp-terraform-<env> context); null without terraform_identity."
  value       = one(google_service_account.terraform[*].email)
}
