# Topics and subscriptions of the event backbone (docs/architecture.md §2.4) and who may use them.

locals {
  # Seven days: how long the live subscriptions keep unacked messages, and how long a worker
  # outage may last before events are lost.
  retention = "604800s"
  # 31 days, the most Pub/Sub allows: dead letters wait for an operator that long.
  dlq_retention = "2678400s"
}

resource "google_pubsub_topic" "raw" {
  #checkov:skip=CKV_GCP_83:Customer-managed encryption is optional (var.kms_key_name); by default messages are encrypted at rest with Google-managed keys.
  name         = var.topic_names.raw
  project      = var.project_id
  kms_key_name = var.kms_key_name

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

resource "google_pubsub_topic" "merged" {
  #checkov:skip=CKV_GCP_83:Customer-managed encryption is optional (var.kms_key_name); by default messages are encrypted at rest with Google-managed keys.
  name         = var.topic_names.merged
  project      = var.project_id
  kms_key_name = var.kms_key_name

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

resource "google_pubsub_topic" "dlq" {
  #checkov:skip=CKV_GCP_83:Customer-managed encryption is optional (var.kms_key_name); by default messages are encrypted at rest with Google-managed keys.
  name         = var.topic_names.dlq
  project      = var.project_id
  kms_key_name = var.kms_key_name

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }
}

# The workers' subscription: ordered per aggregate, dead-lettering poison after 5 attempts.
resource "google_pubsub_subscription" "raw" {
  name    = var.raw_subscription_name
  project = var.project_id
  topic   = google_pubsub_topic.raw.id

  ack_deadline_seconds       = 60
  enable_message_ordering    = true
  message_retention_duration = local.retention

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dlq.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # Never expires, however long the workers are away.
  expiration_policy {
    ttl = ""
  }
}

# Keeps dead letters until an operator lists, redrives or drops them.
resource "google_pubsub_subscription" "dlq" {
  name    = var.dlq_subscription_name
  project = var.project_id
  topic   = google_pubsub_topic.dlq.id

  ack_deadline_seconds       = 60
  message_retention_duration = local.dlq_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# The workers' dead-letter watch: a dead letter Pub/Sub made without the worker's last-attempt
# nack (a worker stopped during that attempt, acks lost) parks its ordering key from here, so
# the key's later events wait behind it (docs/architecture.md §2.5, "Parked keys"). The
# workers ack here only; the operators' events.dlq-sub keeps every dead letter.
resource "google_pubsub_subscription" "dlq_watch" {
  name    = "${var.topic_names.dlq}-watch"
  project = var.project_id
  topic   = google_pubsub_topic.dlq.id

  ack_deadline_seconds = 60

  expiration_policy {
    ttl = ""
  }
}

# Downstream consumers of stored events (e.g. the NetSuite sync), as configured.
resource "google_pubsub_subscription" "merged" {
  for_each = var.merged_subscriptions

  name    = each.key
  project = var.project_id
  topic   = google_pubsub_topic.merged.id

  ack_deadline_seconds       = each.value.ack_deadline_seconds
  enable_message_ordering    = each.value.enable_message_ordering
  filter                     = each.value.filter
  message_retention_duration = local.retention

  expiration_policy {
    ttl = ""
  }
}

# The Pub/Sub service agent forwards dead letters: it publishes to the dead-letter topic and
# acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "dlq_service_agent_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dlq.name
  role    = "roles/pubsub.publisher"
  member  = var.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "raw_service_agent_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.raw.name
  role         = "roles/pubsub.subscriber"
  member       = var.pubsub_service_agent
}

# The web tier only emits: publish to events.raw, nothing else — and in spool mode not even that
# (web_publishes_directly = false): the relay beside php-fpm publishes.
resource "google_pubsub_topic_iam_member" "raw_web_publisher" {
  count   = var.web_publishes_directly ? 1 : 0
  project = var.project_id
  topic   = google_pubsub_topic.raw.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.web_service_account}"
}

# Spool mode: `suitex-events relay` publishes what the web tier spooled, to events.raw only.
resource "google_pubsub_topic_iam_member" "raw_relay_publisher" {
  count   = var.relay_service_account == "" ? 0 : 1
  project = var.project_id
  topic   = google_pubsub_topic.raw.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.relay_service_account}"
}

# The workers consume events.raw-sub and re-publish to events.merged; their operators' tools
# (dlq list/redrive) read events.dlq-sub and re-publish to events.raw.
resource "google_pubsub_subscription_iam_member" "raw_worker_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.raw.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.worker_service_account}"
}

resource "google_pubsub_topic_iam_member" "merged_worker_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.merged.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.worker_service_account}"
}

resource "google_pubsub_subscription_iam_member" "dlq_worker_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.dlq.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.worker_service_account}"
}

resource "google_pubsub_subscription_iam_member" "dlq_watch_worker_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.dlq_watch.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.worker_service_account}"
}

resource "google_pubsub_topic_iam_member" "raw_worker_redrive_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.raw.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.worker_service_account}"
}

resource "google_pubsub_subscription_iam_member" "merged_consumer_subscriber" {
  for_each = { for name, s in var.merged_subscriptions : name => s if s.consumer_service_account != "" }

  project      = var.project_id
  subscription = google_pubsub_subscription.merged[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${each.value.consumer_service_account}"
}
