output "topic_ids" {
  description = "Pub/Sub topic ids (projects/P/topics/T), by role."
  value       = module.pubsub.topic_ids
}

output "subscription_ids" {
  description = "Pub/Sub subscription ids (projects/P/subscriptions/S), by name."
  value       = module.pubsub.subscription_ids
}

output "payload_bucket_name" {
  description = "The claim-check bucket (SUITEX_EVENTS_PAYLOAD_BUCKET)."
  value       = module.payload_bucket.name
}

output "ledger_digest_bucket_name" {
  description = "The ledger's digest bucket (SUITEX_WORKER_DIGEST_BUCKET)."
  value       = module.ledger_digests.name
}

output "event_store_connection_name" {
  description = "Cloud SQL connection name of the event store instance (PROJECT:REGION:INSTANCE), for the Cloud SQL Auth Proxy."
  value       = module.event_store_sql.connection_name
}

output "event_store_private_ip" {
  description = "Private IP of the event store instance (DB_EVENT_STORE_HOST)."
  value       = module.event_store_sql.private_ip_address
}

output "event_store_database" {
  description = "The event store database (DB_EVENT_STORE_DATABASE)."
  value       = module.event_store_sql.database_name
}

output "event_store_server_ca_cert" {
  description = "PEM of the event store's server CA: DB_EVENT_STORE_SSL_CA for a worker that connects with TLS directly (verify_ca) instead of through the Cloud SQL Auth Proxy."
  value       = module.event_store_sql.server_ca_cert
}

output "event_store_worker_user" {
  description = "The workers' IAM database user (DB_EVENT_STORE_USERNAME; no password: IAM database authentication)."
  value       = module.event_store_sql.worker_db_user
}

output "event_store_migrator_user" {
  description = "The migration job's IAM database user."
  value       = module.event_store_sql.migrator_db_user
}
