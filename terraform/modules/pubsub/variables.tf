variable "project_id" {
  description = "GCP project of the topics and subscriptions."
  type        = string
}

variable "region" {
  description = "The only region messages are stored in."
  type        = string
}

variable "topic_names" {
  description = "Topic names: raw (what the web tier emits), merged (stored events), dlq (dead letters)."
  type = object({
    raw    = string
    merged = string
    dlq    = string
  })
}

variable "raw_subscription_name" {
  description = "The workers' subscription on the raw topic."
  type        = string
}

variable "dlq_subscription_name" {
  description = "The subscription that retains dead letters."
  type        = string
}

variable "merged_subscriptions" {
  description = "Subscriptions on the merged topic, by name."
  type = map(object({
    ack_deadline_seconds     = optional(number, 60)
    enable_message_ordering  = optional(bool, true)
    filter                   = optional(string, "")
    consumer_service_account = optional(string, "")
  }))
  default = {}
}

variable "max_delivery_attempts" {
  description = "Delivery attempts before a message on the raw subscription is dead-lettered."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100 (Pub/Sub's range)."
  }
}

variable "pubsub_service_agent" {
  description = "IAM member of the project's Pub/Sub service agent (serviceAccount:service-NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com), which forwards dead letters."
  type        = string
}

variable "web_service_account" {
  description = "Email of the web tier's service account (publishes to the raw topic only)."
  type        = string
}

variable "web_publishes_directly" {
  description = "Whether the web tier's service account gets its role (false when every web host runs in spool mode)."
  type        = bool
  default     = true
}

variable "relay_service_account" {
  description = "Email of the spool relay's service account (publishes to events.raw); empty for none."
  type        = string
  default     = ""
}

variable "worker_service_account" {
  description = "Email of the workers' service account."
  type        = string
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/…/cryptoKeys/…) to encrypt the topics with; null for Google-managed encryption."
  type        = string
  default     = null
}
