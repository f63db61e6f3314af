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
