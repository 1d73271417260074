output "name" {
  description = "The digest bucket's name."
  value       = google_storage_bucket.digests.name
}
