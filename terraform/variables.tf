variable "project_id" {
  description = "GCP project that runs SuiteX."
  type        = string
}

variable "region" {
  description = "Region of the Cloud SQL instance, the bucket and the Pub/Sub storage policy."
  type        = string
  default     = "us-central1"
}

variable "network_name" {
  description = "Name of the EXISTING SuiteX VPC network the event store gets its private IP on. It is read, never managed."
  type        = string
}

variable "web_service_account" {
  description = "Email of the service account the SuiteX web tier (php-fpm) runs as: it may only publish to events.raw and create claim-check objects."
  type        = string
}

variable "relay_service_account" {
  description = "Email of the service account `suitex-events relay` runs as on web hosts in spool mode (SUITEX_EVENTS_SPOOL): it publishes to events.raw and creates claim-check objects. Empty: no relay (the web tier publishes directly)."
  type        = string
  default     = ""
}

variable "web_publishes_directly" {
  description = "Whether the web tier publishes itself (direct mode, the default). Set false once every web host runs in spool mode with a relay: the web tier's service account then gets no Pub/Sub and no bucket role at all."
  type        = bool
  default     = true
}

variable "worker_service_account" {
  description = "Email of the service account the event store workers run as. It becomes the event store's IAM database user with the writer role."
  type        = string
}

variable "migrator_service_account" {
  description = "Email of the service account that runs migrations (a deploy job). It becomes the event store's IAM database user with the migrator role."
  type        = string
}

variable "topic_names" {
  description = "Pub/Sub topic names."
  type = object({
    raw    = string
    merged = string
    dlq    = string
  })
  default = {
    raw    = "events.raw"
    merged = "events.merged"
    dlq    = "events.dlq"
  }
}

variable "raw_subscription_name" {
  description = "The workers' subscription on events.raw."
  type        = string
  default     = "events.raw-sub"
}

variable "dlq_subscription_name" {
  description = "The subscription that retains dead letters."
  type        = string
  default     = "events.dlq-sub"
}

variable "merged_subscriptions" {
  description = "Subscriptions on events.merged for downstream consumers (e.g. the NetSuite sync), by name. Empty by default."
  type = map(object({
    ack_deadline_seconds     = optional(number, 60)
    enable_message_ordering  = optional(bool, true)
    filter                   = optional(string, "")
    consumer_service_account = optional(string, "")
  }))
  default = {}
}

variable "payload_bucket_name" {
  description = "Claim-check bucket for oversized payloads (globally unique)."
  type        = string
  default     = "suitex-payload-snapshots"
}

variable "ledger_digest_bucket_name" {
  description = "Bucket of the ledger's digests, with a locked retention policy (SUITEX_WORKER_DIGEST_BUCKET; globally unique)."
  type        = string
  default     = "suitex-ledger-digests"
}

variable "sql_instance_name" {
  description = "Name of the NEW dedicated Cloud SQL instance for the event store."
  type        = string
  default     = "suitex-event-store"
}

variable "sql_tier" {
  description = "Machine tier of the event store instance."
  type        = string
  default     = "db-custom-2-7680"
}

variable "create_private_service_access" {
  description = "Create the private services access range and peering on the existing network. Off by default: SuiteX's network normally has it already (the primary database uses it), and this configuration must not disturb it."
  type        = bool
  default     = false
}

variable "pubsub_kms_key_name" {
  description = "Cloud KMS key to encrypt the topics with; null (default) for Google-managed encryption."
  type        = string
  default     = null
}
