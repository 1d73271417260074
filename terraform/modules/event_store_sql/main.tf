# The NEW dedicated, highly available Cloud SQL for MySQL 8.0 instance of the event store.

# Private services access on the existing network, only when asked for (SuiteX's network
# normally has it already). ABANDON: destroying this configuration must never cut the peering
# other instances on the network — the SuiteX primary among them — depend on.
resource "google_compute_global_address" "private_service_access" {
  count = var.create_private_service_access ? 1 : 0

  name          = "${var.instance_name}-psa"
  project       = var.project_id
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_service_access_prefix_length
  network       = var.network_id
}

resource "google_service_networking_connection" "private_service_access" {
  count = var.create_private_service_access ? 1 : 0

  network                 = var.network_id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_service_access[0].name]
  deletion_policy         = "ABANDON"
}

resource "google_sql_database_instance" "event_store" {
  name             = var.instance_name
  project          = var.project_id
  region           = var.region
  database_version = "MYSQL_8_0"

  # Terraform refuses to destroy it…
  deletion_protection = true

  settings {
    tier              = var.tier
    edition           = "ENTERPRISE"
    availability_type = "REGIONAL" # primary and standby in two zones, automatic failover
    disk_type         = "PD_SSD"
    disk_autoresize   = true
    # …and so does Cloud SQL itself, whoever asks.
    deletion_protection_enabled = true

    backup_configuration {
      enabled                        = true
      binary_log_enabled             = true # point-in-time recovery
      start_time                     = var.backup_start_time
      transaction_log_retention_days = var.transaction_log_retention_days

      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    ip_configuration {
      ipv4_enabled    = false # private IP only
      private_network = var.network_id
      ssl_mode        = var.ssl_mode # TLS required for every connection
    }

    maintenance_window {
      day          = var.maintenance_day
      hour         = var.maintenance_hour
      update_track = "stable"
    }

    # The append-only triggers are created by the migration; with binary logging on, MySQL
    # needs this to let a non-SUPER account create triggers.
    database_flags {
      name  = "log_bin_trust_function_creators"
      value = "on"
    }

    # A 32 MiB payload must fit one INSERT.
    database_flags {
      name  = "max_allowed_packet"
      value = "67108864"
    }

    database_flags {
      name  = "local_infile"
      value = "off"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_service_networking_connection.private_service_access]
}

resource "google_sql_database" "event_store" {
  name      = var.database_name
  project   = var.project_id
  instance  = google_sql_database_instance.event_store.name
  charset   = "utf8mb4"
  collation = "utf8mb4_unicode_ci"
}

# The workers' account. Its password goes through a write-only argument: Terraform sends it to
# Cloud SQL and never records it in the state or in any output.
resource "google_sql_user" "worker" {
  name                = var.worker_user
  project             = var.project_id
  instance            = google_sql_database_instance.event_store.name
  host                = "%"
  password_wo         = var.worker_password
  password_wo_version = var.worker_password_version
}
