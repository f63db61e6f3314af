terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
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
