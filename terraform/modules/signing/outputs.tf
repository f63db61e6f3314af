output "signing_key" {
  description = "`signing_key` for this environment in ferry.toml (the key's first version)."
  value       = "gcpkms://${google_kms_crypto_key.images.id}/cryptoKeyVersions/1"
}

output "crypto_key_id" {
  description = "The signing key, projects/…/cryptoKeys/KEY (its first version is what ferry signs with)."
  value       = google_kms_crypto_key.images.id
}
