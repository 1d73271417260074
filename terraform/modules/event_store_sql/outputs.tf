output "connection_name" {
  description = "PROJECT:REGION:INSTANCE, for the Cloud SQL Auth Proxy and connectors."
  value       = google_sql_database_instance.event_store.connection_name
}

output "private_ip_address" {
  description = "The instance's private IP on the SuiteX network."
  value       = google_sql_database_instance.event_store.private_ip_address
}

output "database_name" {
  description = "The event store database."
  value       = google_sql_database.event_store.name
}
