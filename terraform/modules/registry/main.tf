# The Docker repository ferry pushes to. Artifact Registry replaces Container Registry,
# which Google has shut down.
resource "google_artifact_registry_repository" "this" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption: the images hold a public repository's build and no secret, and a KMS key would add a key to manage and guard for nothing
  project       = var.project_id
  location      = var.location
  repository_id = var.repository_id
  format        = "DOCKER"
  description   = "Images of the hello service, tagged by commit."

  docker_config {
    # A commit tag always names the same image.
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.keep_recent
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }
}
