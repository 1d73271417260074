# The ledger's digests outside the database (docs/architecture.md §2.2, "Digests"): the leading
# events.merged feeder writes {digest, seq, row_hash, created_at} here every N rows or T
# seconds, and `suitex-events verify --digests` holds the hash chain to every one of them. The
# retention policy is locked: no one — not the database's admins, not the project's owners, not
# the worker — can delete or replace a digest before it expires, and the lock cannot be undone.

resource "google_storage_bucket" "digests" {
  #checkov:skip=CKV_GCP_62:Object access is audited with Cloud Audit Logs (data access); a usage-log bucket would add a second bucket with a retention of its own.
  #checkov:skip=CKV_GCP_78:Objects are written create-only and the locked retention policy forbids replacing them; versioning would add nothing.
  name     = var.name
  project  = var.project_id
  location = var.location

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  retention_policy {
    retention_period = var.retention_seconds
    is_locked        = true
  }

  versioning {
    enabled = false
  }
}

# The workers create digests and read them back (a new leader finds the last number; verify
# reads them all). No role that deletes or replaces.
resource "google_storage_bucket_iam_member" "worker_creator" {
  bucket = google_storage_bucket.digests.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${var.worker_service_account}"
}

resource "google_storage_bucket_iam_member" "worker_viewer" {
  bucket = google_storage_bucket.digests.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${var.worker_service_account}"
}
