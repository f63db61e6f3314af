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
  labels = {
    app         = "hello"
    environment = "staging"
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

  # Production's deploy account reads staging, to promote what it runs.
  promote_readers = var.promote_readers

  circleci_deploy_context_id = var.circleci_deploy_context_id
  terraform_identity = {
    circleci_apply_context_id = var.circleci_terraform_context_id
    circleci_plan_context_id  = var.circleci_terraform_plan_context_id
    state_bucket              = var.state_bucket
  }
}
