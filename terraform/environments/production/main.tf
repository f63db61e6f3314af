module "registry" {
  source = "../../modules/registry"

  project_id = var.project_id
  location   = var.region
}

module "cluster" {
  source = "../../modules/gke-cluster"

  project_id          = var.project_id
  name                = var.cluster_name
  location            = var.region
  max_nodes           = var.max_nodes
  deletion_protection = var.deletion_protection
  # Pods run only images with ferry's attestation (module.binary_authorization's policy).
  binary_authorization = true
  labels = {
    app         = "hello"
    environment = "production"
  }
}

module "ci_access" {
  source = "../../modules/ci-access"

  project_id          = var.project_id
  circleci_org_id     = var.circleci_org_id
  circleci_project_id = var.circleci_project_id
  repository_location = module.registry.location
  repository_id       = module.registry.repository_id

  node_service_account_email = module.cluster.node_service_account

  # Terraform manages module.signing and module.binary_authorization here.
  manages_signing = true

  circleci_deploy_context_id = var.circleci_deploy_context_id
  terraform_identity = {
    circleci_apply_context_id = var.circleci_terraform_context_id
    circleci_plan_context_id  = var.circleci_terraform_plan_context_id
    state_bucket              = var.state_bucket
  }
}

module "signing" {
  source = "../../modules/signing"

  project_id             = var.project_id
  location               = var.region
  signer_service_account = module.ci_access.service_account_email
  # Terraform reads the public key for the attestor (module.binary_authorization), in plans
  # and applies.
  public_key_viewers = [
    "serviceAccount:${module.ci_access.terraform_service_account_email}",
    "serviceAccount:${module.ci_access.terraform_plan_service_account_email}",
  ]
}

# GKE admits only images ferry ship signed with the key above and attested; CI's deploy
# account, the only signer, is the only one that may attach attestations.
module "binary_authorization" {
  source = "../../modules/binary-authorization"

  project_id          = var.project_id
  signing_crypto_key  = module.signing.crypto_key_id
  attestation_creator = module.ci_access.service_account_email
}
