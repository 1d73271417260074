# The claim-check bucket: payloads too large for a Pub/Sub message, kept 30 days.

resource "google_storage_bucket" "payloads" {
  #checkov:skip=CKV_GCP_62:Object access is audited with Cloud Audit Logs (data access); a usage-log bucket would copy tenant object names into a second bucket with a retention of its own.
  #checkov:skip=CKV_GCP_78:Objects are written create-only and never replaced; versioning would only keep payloads past the 30-day lifecycle the design sets.
  name     = var.name
  project  = var.project_id
  location = var.location

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Objects are written create-only and never replaced, so versions would only keep garbage.
  force_destroy = false

  lifecycle_rule {
    condition {
      age = var.retention_days
    }
    action {
      type = "Delete"
    }
  }

  versioning {
    enabled = false
  }
}

# The web tier writes payloads (create-only; it cannot overwrite or delete).
resource "google_storage_bucket_iam_member" "web_creator" {
  count  = var.web_publishes_directly ? 1 : 0
  bucket = google_storage_bucket.payloads.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${var.web_service_account}"
}

# Spool mode: the relay uploads the oversized payloads the web tier spooled.
resource "google_storage_bucket_iam_member" "relay_creator" {
  count  = var.relay_service_account == "" ? 0 : 1
  bucket = google_storage_bucket.payloads.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${var.relay_service_account}"
}

# The workers read them (to resolve claim-checks and to re-offload on replay they also create).
resource "google_storage_bucket_iam_member" "worker_viewer" {
  bucket = google_storage_bucket.payloads.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.worker_service_account}"
}

resource "google_storage_bucket_iam_member" "worker_creator" {
  bucket = google_storage_bucket.payloads.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${var.worker_service_account}"
}
