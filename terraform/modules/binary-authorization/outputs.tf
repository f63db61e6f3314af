output "attestor" {
  description = "`binauthz.attestor` for this environment in ferry.toml: projects/P/attestors/NAME."
  value       = google_binary_authorization_attestor.ferry.id
}

output "note" {
  description = "`binauthz.note` for this environment in ferry.toml: projects/P/notes/NAME, where attestations are attached."
  value       = google_container_analysis_note.attestor.id
}

output "public_key_id" {
  description = "The attestor's public key id, which ferry puts in each signature (derived from signing_key; no need to set it)."
  value       = data.google_kms_crypto_key_version.signing.id
}
