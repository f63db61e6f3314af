project_id          = "ferry-production"
region              = "europe-west1"
cluster_name        = "ferry-production"
circleci_org_id     = "00000000-0000-0000-0000-000000000000"
circleci_project_id = "00000000-0000-0000-0000-000000000001"
max_nodes           = 3
deletion_protection = true
