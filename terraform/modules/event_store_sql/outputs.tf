output "connection_name" {
  description = "PROJECT:REGION:INSTANCE, for the Cloud SQL Auth Proxy and connectors."
  value       = google_sql_database_instance.event_store.connection_name
}

output "private_ip_address" {
  description = "The instance's private IP on the SuiteX network."
  value       = google_sql_database_instance.event_store.private_ip_address
}

output "server_ca_cert" {
  description = "PEM of the instance's server CA, for clients that connect with TLS directly (DB_EVENT_STORE_SSL_CA, verify_ca)."
  value       = google_sql_database_instance.event_store.server_ca_cert[0].cert
}

output "worker_db_user" {
  description = "The workers' IAM database user (DB_EVENT_STORE_USERNAME of the worker)."
  value       = google_sql_user.worker.name
}

output "migrator_db_user" {
  description = "The migrator's IAM database user."
  value       = google_sql_user.migrator.name
}

output "database_name" {
  description = "The event store database."
  value       = google_sql_database.event_store.name
}
