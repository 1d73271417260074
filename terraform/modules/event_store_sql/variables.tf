variable "project_id" {
  description = "GCP project of the instance."
  type        = string
}

variable "region" {
  description = "Region of the instance (its two zones are chosen by Cloud SQL)."
  type        = string
}

variable "instance_name" {
  description = "Name of the new instance."
  type        = string
}

variable "tier" {
  description = "Machine tier."
  type        = string
}

variable "network_id" {
  description = "Id of the existing VPC network the instance gets its private IP on."
  type        = string
}

variable "create_private_service_access" {
  description = "Also create the private services access range and peering on the network (off when the network has it already)."
  type        = bool
  default     = false
}

variable "private_service_access_prefix_length" {
  description = "Size of the private services access range, when it is created here."
  type        = number
  default     = 20
}

variable "database_name" {
  description = "The event store database."
  type        = string
  default     = "event_store"
}

variable "worker_service_account" {
  description = "Email of the workers' service account: it becomes an IAM database user (the writer role is granted by `suitex-events grants`)."
  type        = string
}

variable "migrator_service_account" {
  description = "Email of the service account migrations run as: it becomes an IAM database user (the migrator role is granted by `suitex-events grants`)."
  type        = string
}

variable "backup_start_time" {
  description = "Start of the daily backup window (UTC, HH:MM)."
  type        = string
  default     = "02:00"
}

variable "transaction_log_retention_days" {
  description = "Days of binary logs kept for point-in-time recovery."
  type        = number
  default     = 7
}

variable "retained_backups" {
  description = "Automated backups kept."
  type        = number
  default     = 30
}

variable "maintenance_day" {
  description = "Maintenance window day (1 = Monday … 7 = Sunday)."
  type        = number
  default     = 7
}

variable "maintenance_hour" {
  description = "Maintenance window hour (UTC)."
  type        = number
  default     = 3
}

variable "ssl_mode" {
  description = "TLS policy of the instance. TRUSTED_CLIENT_CERTIFICATE_REQUIRED (default): TLS with a client certificate, which the Cloud SQL Auth Proxy and connectors provide; ENCRYPTED_ONLY: TLS without client certificates."
  type        = string
  default     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"

  validation {
    condition     = contains(["TRUSTED_CLIENT_CERTIFICATE_REQUIRED", "ENCRYPTED_ONLY"], var.ssl_mode)
    error_message = "ssl_mode must require TLS: TRUSTED_CLIENT_CERTIFICATE_REQUIRED or ENCRYPTED_ONLY."
  }
}
