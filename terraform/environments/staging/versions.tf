terraform {
  required_version = "= 1.11.4"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "= 6.14.1"
    }
  }

  # Create the bucket once, by hand (docs/infrastructure.md), before `terraform init`.
  backend "gcs" {
    bucket = "ferry-staging-tfstate"
    prefix = "terraform/staging"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
