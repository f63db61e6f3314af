# The key ferry signs images with (`signing_key = "gcpkms://…"` in ferry.toml): an ECDSA P-256
# key in Cloud KMS, so the private half never leaves Google's HSMs. Only CI's deploy account
# may sign with it; anyone who can read the public key can verify (cosign, ferry verify-image,
# the Binary Authorization attestor of terraform/modules/binary-authorization).
resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = var.key_ring
  location = var.location
}

resource "google_kms_crypto_key" "images" {
  #checkov:skip=CKV_GCP_43:an asymmetric signing key cannot rotate automatically; a new version is a new public key every verifier must be given, so rotation is a deliberate change (docs/infrastructure.md)
  name     = "image-signing"
  key_ring = google_kms_key_ring.this.id
  purpose  = "ASYMMETRIC_SIGN"

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = "HSM"
  }

  lifecycle {
    prevent_destroy = true
  }
}

# Authoritative: these are the only bindings on the key, so nobody else is allowed to sign.
data "google_iam_policy" "images" {
  binding {
    role    = "roles/cloudkms.signer"
    members = ["serviceAccount:${var.signer_service_account}"]
  }

  binding {
    role    = "roles/cloudkms.publicKeyViewer"
    members = concat(["serviceAccount:${var.signer_service_account}"], var.public_key_viewers)
  }
}

resource "google_kms_crypto_key_iam_policy" "images" {
  crypto_key_id = google_kms_crypto_key.images.id
  policy_data   = data.google_iam_policy.images.policy_data
}
