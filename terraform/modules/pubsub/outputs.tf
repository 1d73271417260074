output "topic_ids" {
  description = "Topic ids by role (raw, merged, dlq)."
  value = {
    raw    = google_pubsub_topic.raw.id
    merged = google_pubsub_topic.merged.id
    dlq    = google_pubsub_topic.dlq.id
  }
}

output "subscription_ids" {
  description = "Subscription ids by name."
  value = merge(
    {
      (google_pubsub_subscription.raw.name) = google_pubsub_subscription.raw.id
      (google_pubsub_subscription.dlq.name) = google_pubsub_subscription.dlq.id
    },
    { for name, s in google_pubsub_subscription.merged : name => s.id },
  )
}
