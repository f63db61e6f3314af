# A GKE Standard cluster for the hello service.
#
# Compared with the original: still VPC-native on the default network with client
# certificates disabled (basic auth no longer exists in GKE or the provider), and now with
# a separately managed node pool, Workload Identity, shielded nodes and a release channel.

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name}"
}

# The least a node needs: write logs and metrics, pull images from Artifact Registry.
resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/artifactregistry.reader",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "this" {
  project  = var.project_id
  name     = var.name
  location = var.location

  network    = var.network
  subnetwork = var.subnetwork

  # VPC-native: pods and services get alias IP ranges chosen by GKE.
  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {}

  # Nodes live in google_container_node_pool.primary, so they can change without
  # recreating the cluster.
  remove_default_node_pool = true
  initial_node_count       = 1

  release_channel {
    channel = var.release_channel
  }

  # The channel upgrades the cluster; this only keeps it from starting below the Kubernetes
  # minor ferry is built against (k8s-openapi's v1_34 feature).
  min_master_version = var.min_kubernetes_version

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  enable_shielded_nodes = true

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  resource_labels     = var.labels
  deletion_protection = var.deletion_protection
}

resource "google_container_node_pool" "primary" {
  project  = var.project_id
  name     = "primary"
  location = var.location
  cluster  = google_container_cluster.this.name

  autoscaling {
    min_node_count = var.min_nodes
    max_node_count = var.max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.machine_type
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = var.labels

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
