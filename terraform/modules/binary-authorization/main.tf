# Binary Authorization for one project: GKE admits a Pod only if its image carries an
# attestation by ferry's attestor, that is, a signature by the Cloud KMS key ferry signs with
# (terraform/modules/signing), stored as a Container Analysis occurrence on the attestor's
# note. `ferry ship` creates that occurrence after it signs the image (`binauthz` in the
# environment's ferry.toml); nothing else in the project can make a valid one, since only
# CI's deploy account may sign with the key.
#
# Classic attestors, not GKE's Sigstore check: provider 6.14.1 has no resource for the
# continuous-validation platform policy that reads cosign's `.sig` signatures.

resource "google_container_analysis_note" "attestor" {
  project = var.project_id
  name    = "${var.attestor_name}-note"

  attestation_authority {
    hint {
      human_readable_name = "Images signed by ferry ship (${var.attestor_name})"
    }
  }
}

# The public half of the signing key, read from Cloud KMS: the attestor verifies with exactly
# the key ferry signs with, and the key id is the one ferry puts in each signature.
data "google_kms_crypto_key_version" "signing" {
  crypto_key = var.signing_crypto_key
  version    = var.signing_key_version
}

resource "google_binary_authorization_attestor" "ferry" {
  project     = var.project_id
  name        = var.attestor_name
  description = "Attests that ferry ship, in CI, signed the image with the Cloud KMS key ${var.signing_crypto_key}."

  attestation_authority_note {
    note_reference = google_container_analysis_note.attestor.name

    public_keys {
      # //cloudkms.googleapis.com/v1/projects/…/cryptoKeyVersions/N: ferry's publicKeyId.
      id = data.google_kms_crypto_key_version.signing.id
      pkix_public_key {
        public_key_pem      = data.google_kms_crypto_key_version.signing.public_key[0].pem
        signature_algorithm = "ECDSA_P256_SHA256"
      }
    }
  }
}

# The project's one policy: every image needs the attestor's attestation, and a Pod whose
# image lacks it is refused (and logged). Google's own GKE system images are admitted by
# Google's global policy, so the cluster's add-ons keep running.
resource "google_binary_authorization_policy" "this" {
  project                       = var.project_id
  description                   = "Only images ferry ship signed and attested (${var.attestor_name})."
  global_policy_evaluation_mode = "ENABLE"

  default_admission_rule {
    evaluation_mode         = "REQUIRE_ATTESTATION"
    enforcement_mode        = "ENFORCED_BLOCK_AND_AUDIT_LOG"
    require_attestations_by = [google_binary_authorization_attestor.ferry.id]
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

# Authoritative, as the key's policy is: the attestation creator may attach occurrences to
# the note, Binary Authorization's service agent may read them, and nobody else is bound.
data "google_iam_policy" "note" {
  binding {
    role    = "roles/containeranalysis.notes.attacher"
    members = ["serviceAccount:${var.attestation_creator}"]
  }

  binding {
    role    = "roles/containeranalysis.notes.occurrences.viewer"
    members = ["serviceAccount:service-${data.google_project.this.number}@gcp-sa-binaryauthorization.iam.gserviceaccount.com"]
  }
}

resource "google_container_analysis_note_iam_policy" "attestor" {
  project     = var.project_id
  note        = google_container_analysis_note.attestor.name
  policy_data = data.google_iam_policy.note.policy_data
}

# Occurrences belong to the project, not to a note, so creating one is a project-level
# permission. This role holds that one permission and nothing else: no reading, changing or
# deleting the project's occurrences (vulnerability findings included). What the occurrence
# may say is limited by the note binding above, and what Binary Authorization believes by the
# signature in it.
resource "google_project_iam_custom_role" "attestation_creator" {
  project     = var.project_id
  role_id     = var.creator_role_id
  title       = "Binary Authorization attestation creator (ferry)"
  description = "Creates Container Analysis occurrences; with notes.attacher on one note, that note's attestations."
  permissions = ["containeranalysis.occurrences.create"]
}

resource "google_project_iam_member" "attestation_creator" {
  project = var.project_id
  role    = google_project_iam_custom_role.attestation_creator.id
  member  = "serviceAccount:${var.attestation_creator}"
}
