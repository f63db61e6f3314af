# CI's identity: a service account with only what a deploy needs, impersonated through
# CircleCI's OIDC tokens. No JSON key exists, so none can leak (the original kept one in a
# CircleCI environment variable).

resource "google_service_account" "ci" {
  project      = var.project_id
  account_id   = "ferry-ci"
  display_name = "CircleCI deploys (ferry)"
}

# Deploy to GKE: create and update workloads, no cluster administration.
resource "google_project_iam_member" "deploy" {
  project = var.project_id
  role    = "roles/container.developer"
  member  = "serviceAccount:${google_service_account.ci.email}"
}

# Push images to this one repository only.
resource "google_artifact_registry_repository_iam_member" "push" {
  project    = var.project_id
  location   = var.repository_location
  repository = var.repository_id
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.ci.email}"
}

resource "google_iam_workload_identity_pool" "circleci" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "CircleCI"
  description               = "OIDC tokens issued by CircleCI jobs"
}

resource "google_iam_workload_identity_pool_provider" "circleci" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.circleci.workload_identity_pool_id
  workload_identity_pool_provider_id = "circleci-oidc"
  display_name                       = "CircleCI OIDC"

  oidc {
    issuer_uri        = "https://oidc.circleci.com/org/${var.circleci_org_id}"
    allowed_audiences = [var.circleci_org_id]
  }

  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.project_id" = "assertion['oidc.circleci.com/project-id']"
    "attribute.context_id" = "assertion['oidc.circleci.com/context-ids'][0]"
  }

  # Only this CircleCI project's jobs may present tokens.
  attribute_condition = "attribute.project_id == \"${var.circleci_project_id}\""
}

resource "google_service_account_iam_member" "circleci_impersonation" {
  service_account_id = google_service_account.ci.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.circleci.name}/attribute.project_id/${var.circleci_project_id}"
}

# Terraform's own CI identity (optional): the account CircleCI's terraform-plan and
# terraform-apply jobs impersonate. Only jobs running with one CircleCI context (the
# environment's gcp-terraform-<env>) can use it, not every job of the project: deploys cannot.
locals {
  terraform_enabled = var.terraform_identity != null

  # What managing this environment's resources takes, and no more: the cluster and node pool,
  # the repository, service accounts (and actAs on the node account a node pool runs as),
  # the workload identity pool, and the project IAM bindings the modules make.
  terraform_roles = local.terraform_enabled ? toset([
    "roles/container.admin",
    "roles/artifactregistry.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/resourcemanager.projectIamAdmin",
  ]) : toset([])
}

resource "google_service_account" "terraform" {
  count = local.terraform_enabled ? 1 : 0

  project      = var.project_id
  account_id   = "ferry-terraform"
  display_name = "CircleCI terraform plan/apply (ferry)"
}

resource "google_project_iam_member" "terraform" {
  for_each = local.terraform_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.terraform[0].email}"
}

# The state bucket only: its objects (state and lock) and its IAM policy, which holds this
# very binding (objectAdmin cannot read a bucket's policy, so a plan would fail refreshing it).
resource "google_storage_bucket_iam_member" "terraform_state" {
  count = local.terraform_enabled ? 1 : 0

  bucket = var.terraform_identity.state_bucket
  role   = "roles/storage.admin"
  member = "serviceAccount:${google_service_account.terraform[0].email}"
}

resource "google_service_account_iam_member" "terraform_impersonation" {
  count = local.terraform_enabled ? 1 : 0

  service_account_id = google_service_account.terraform[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.circleci.name}/attribute.context_id/${var.terraform_identity.circleci_context_id}"
}
