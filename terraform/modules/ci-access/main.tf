# CI's identities in one environment, impersonated through CircleCI's OIDC tokens. No JSON
# key exists, so none can leak (the original kept one in a CircleCI environment variable).
#
#   ferry-ci              deploys: master jobs with the gcp-<env> context only
#   ferry-terraform       applies Terraform: master jobs with the gcp-terraform-<env> context only
#   ferry-terraform-plan  plans Terraform, read-only: jobs on any branch with the
#                         gcp-terraform-plan-<env> context
#   promote_readers       other environments' deploy accounts (production's, in staging):
#                         read-only, to promote what this environment runs
#
# No SSH rerun of any job gets a token: it hands a person a shell holding it.
# scripts/check-ci-access reads this file and asserts these conditions, offline.

resource "google_service_account" "ci" {
  project      = var.project_id
  account_id   = "ferry-ci"
  display_name = "CircleCI deploys (ferry)"
}

# What `gcloud container clusters get-credentials` needs at project level, and nothing that
# reads or writes a Kubernetes object: what ferry may do in the environment's namespace is a
# Role and RoleBinding inside the cluster (docs/infrastructure.md), not project-wide IAM.
resource "google_project_iam_member" "deploy" {
  project = var.project_id
  role    = "roles/container.clusterViewer"
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

# Another environment's deploy accounts may read this one, to promote what it runs (production's
# `ferry promote --from staging`): pull from this one repository, and what `gcloud container
# clusters get-credentials` needs (in the cluster, the read-only Role `ferry rbac
# --promote-source` prints is all they get). Reader roles only: nothing here can push an image,
# change the cluster, or act as this environment's own accounts.
resource "google_artifact_registry_repository_iam_member" "promote_pull" {
  for_each = toset(var.promote_readers)

  project    = var.project_id
  location   = var.repository_location
  repository = var.repository_id
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${each.value}"
}

resource "google_project_iam_member" "promote_cluster_viewer" {
  for_each = toset(var.promote_readers)

  project = var.project_id
  role    = "roles/container.clusterViewer"
  member  = "serviceAccount:${each.value}"
}

resource "google_iam_workload_identity_pool" "circleci" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "CircleCI"
  description               = "OIDC tokens issued by CircleCI jobs"
}

# Each identity has one attribute, "true" only for the jobs that may impersonate it; its
# impersonation binding below names that attribute. The conditions are CEL over the token's
# claims: `vcs-ref` is the branch (refs/heads/master), `context-ids` the contexts the job
# runs with, `ssh-rerun` true for a job restarted with SSH.
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
    "google.subject"            = "assertion.sub"
    "attribute.project_id"      = "assertion['oidc.circleci.com/project-id']"
    "attribute.deploy"          = "(assertion['oidc.circleci.com/vcs-ref'] == 'refs/heads/master' && '${var.circleci_deploy_context_id}' in assertion['oidc.circleci.com/context-ids'] && assertion['oidc.circleci.com/ssh-rerun'] == false) ? 'true' : 'false'"
    "attribute.terraform_apply" = "(assertion['oidc.circleci.com/vcs-ref'] == 'refs/heads/master' && '${var.terraform_identity.circleci_apply_context_id}' in assertion['oidc.circleci.com/context-ids'] && assertion['oidc.circleci.com/ssh-rerun'] == false) ? 'true' : 'false'"
    "attribute.terraform_plan"  = "('${var.terraform_identity.circleci_plan_context_id}' in assertion['oidc.circleci.com/context-ids'] && assertion['oidc.circleci.com/ssh-rerun'] == false) ? 'true' : 'false'"
  }

  # Only this CircleCI project's jobs, never an SSH rerun, and only a job that may use one of
  # the identities: any other token is refused at the exchange.
  attribute_condition = "assertion['oidc.circleci.com/project-id'] == '${var.circleci_project_id}' && assertion['oidc.circleci.com/ssh-rerun'] == false && (attribute.deploy == 'true' || attribute.terraform_apply == 'true' || attribute.terraform_plan == 'true')"
}

locals {
  principal_set = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.circleci.name}"
}

resource "google_service_account_iam_member" "circleci_impersonation" {
  service_account_id = google_service_account.ci.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "${local.principal_set}/attribute.deploy/true"
}

# Terraform's apply identity. What managing this environment's resources takes, and no more:
# the cluster and node pool, the repository, service accounts (and actAs on the node account
# a node pool runs as), the workload identity pool, and the project IAM bindings the modules
# make.
resource "google_service_account" "terraform" {
  project      = var.project_id
  account_id   = "ferry-terraform"
  display_name = "CircleCI terraform apply (ferry)"
}

resource "google_project_iam_member" "terraform" {
  for_each = toset([
    "roles/container.admin",
    "roles/artifactregistry.admin",
    "roles/iam.workloadIdentityPoolAdmin",
    "roles/resourcemanager.projectIamAdmin",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.terraform.email}"
}

# Only in an environment that signs and enforces (manages_signing: production), what applying
# terraform/modules/signing and terraform/modules/binary-authorization takes. Each role is the
# narrowest predefined one that holds the permissions named:
#   binaryauthorization.attestorsAdmin  the attestor (binaryauthorization.attestors.create,
#                                       update, delete, get)
#   binaryauthorization.policyEditor    the project's one admission policy (policy.update, get);
#                                       the attestors admin role cannot change the policy
#   containeranalysis.admin             the attestor's note and its authoritative IAM policy: no
#                                       narrower predefined role holds
#                                       containeranalysis.notes.setIamPolicy (notes.editor only
#                                       creates and changes notes). It can write occurrences,
#                                       but Binary Authorization believes only one signed by
#                                       the KMS key, which this account cannot use to sign
#   iam.roleAdmin                       the custom role ferryAttestationCreator (iam.roles.create,
#                                       update, delete); binding it to the deploy account is
#                                       projectIamAdmin's, above
#   cloudkms.admin                      the key ring, the key and the key's IAM policy
#                                       (cloudkms.keyRings.create, cryptoKeys.create,
#                                       cryptoKeys.setIamPolicy): no cryptographic operation,
#                                       so this account cannot sign
# The public key the attestor trusts is read through the key's own policy
# (roles/cloudkms.publicKeyViewer, given by terraform/modules/signing's public_key_viewers).
locals {
  signing_apply_roles = var.manages_signing ? [
    "roles/binaryauthorization.attestorsAdmin",
    "roles/binaryauthorization.policyEditor",
    "roles/containeranalysis.admin",
    "roles/iam.roleAdmin",
    "roles/cloudkms.admin",
  ] : []

  # The plan identity's read-only counterparts (the IAM policies themselves, of the note and
  # the key, are roles/iam.securityReviewer's, granted below in every environment):
  #   binaryauthorization.attestorsViewer  the attestor
  #   binaryauthorization.policyViewer     the admission policy
  #   containeranalysis.notes.viewer       the attestor's note
  #   iam.roleViewer                       the custom role ferryAttestationCreator
  #   cloudkms.viewer                      the key ring and the key (not the public key: that
  #                                        is the key policy's publicKeyViewer)
  signing_plan_roles = var.manages_signing ? [
    "roles/binaryauthorization.attestorsViewer",
    "roles/binaryauthorization.policyViewer",
    "roles/containeranalysis.notes.viewer",
    "roles/iam.roleViewer",
    "roles/cloudkms.viewer",
  ] : []
}

resource "google_project_iam_member" "terraform_signing" {
  for_each = toset(local.signing_apply_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.terraform.email}"
}

# Creating service accounts is a project-level permission (iam.serviceAccounts.create).
resource "google_project_iam_member" "terraform_service_accounts" {
  #checkov:skip=CKV_GCP_49:Terraform creates this environment's service accounts and their bindings, which only a project-level grant allows; only the master-only apply identity has it
  project = var.project_id
  role    = "roles/iam.serviceAccountAdmin"
  member  = "serviceAccount:${google_service_account.terraform.email}"
}

# actAs on the one account a node pool runs as, not on every account of the project.
resource "google_service_account_iam_member" "terraform_acts_as_nodes" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${var.node_service_account_email}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.terraform.email}"
}

# The state bucket only: its objects (state and lock) and its IAM policy, which holds this
# very binding (objectAdmin cannot read a bucket's policy, so a plan would fail refreshing it).
resource "google_storage_bucket_iam_member" "terraform_state" {
  bucket = var.terraform_identity.state_bucket
  role   = "roles/storage.admin"
  member = "serviceAccount:${google_service_account.terraform.email}"
}

resource "google_service_account_iam_member" "terraform_impersonation" {
  service_account_id = google_service_account.terraform.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "${local.principal_set}/attribute.terraform_apply/true"
}

# Terraform's plan identity: reads everything a plan refreshes (resources, their IAM
# policies, the state) and can change nothing. Plans run with -lock=false, as taking the
# state lock is a write; an apply re-locks and refuses a plan the state has moved past.
resource "google_service_account" "terraform_plan" {
  project      = var.project_id
  account_id   = "ferry-terraform-plan"
  display_name = "CircleCI terraform plan, read-only (ferry)"
}

resource "google_project_iam_member" "terraform_plan" {
  for_each = toset([
    "roles/container.clusterViewer",
    "roles/artifactregistry.reader",
    "roles/iam.serviceAccountViewer",
    "roles/iam.workloadIdentityPoolViewer",
    "roles/iam.securityReviewer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.terraform_plan.email}"
}

resource "google_project_iam_member" "terraform_plan_signing" {
  for_each = toset(local.signing_plan_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.terraform_plan.email}"
}

resource "google_storage_bucket_iam_member" "terraform_plan_state" {
  bucket = var.terraform_identity.state_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.terraform_plan.email}"
}

resource "google_service_account_iam_member" "terraform_plan_impersonation" {
  service_account_id = google_service_account.terraform_plan.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "${local.principal_set}/attribute.terraform_plan/true"
}
