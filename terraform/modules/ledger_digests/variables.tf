variable "project_id" {
  description = "GCP project of the bucket."
  type        = string
}

variable "name" {
  description = "Bucket name."
  type        = string
}

variable "location" {
  description = "Bucket location (the event store's region)."
  type        = string
}

variable "retention_seconds" {
  description = "How long each digest is kept before it may be deleted; locked, so it can only ever grow. The ledger is permanent: ten years by default."
  type        = number
  default     = 315360000
}

variable "worker_service_account" {
  description = "Email of the worker's service account: creates and reads digests, nothing more."
  type        = string
}
