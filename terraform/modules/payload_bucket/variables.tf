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

variable "retention_days" {
  description = "Days after which claim-check objects are deleted. The event store keeps every payload in full, so nothing depends on the bucket afterwards."
  type        = number
  default     = 30
}

variable "web_service_account" {
  description = "Email of the web tier's service account: creates claim-check objects."
  type        = string
}

variable "web_publishes_directly" {
  description = "Whether the web tier's service account gets its role (false when every web host runs in spool mode)."
  type        = bool
  default     = true
}

variable "relay_service_account" {
  description = "Email of the spool relay's service account (creates claim-check objects); empty for none."
  type        = string
  default     = ""
}

variable "worker_service_account" {
  description = "Email of the workers' service account: reads claim-check objects."
  type        = string
}
