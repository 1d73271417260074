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

    # Service accounts log in with IAM database authentication (short-lived OAuth tokens, no
    # password anywhere): the database accounts below are IAM users.
    database_flags {
      name  = "cloudsql_iam_authentication"
      value = "on"
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

# The database accounts are Cloud SQL IAM users, one per service account. Unlike the
# password users the Cloud SQL API creates (which get the broad `cloudsqlsuperuser` role), an
# IAM user starts with no privilege at all: `suitex-events grants` gives each exactly its role
# (writer for the workers, migrator for the migration job) — the one SQL step after apply
# (README.md). Nobody holds a password: logins use the service account's short-lived token.
locals {
  # MySQL IAM user names are the service account's email without `.gserviceaccount.com`.
  worker_db_user   = trimsuffix(var.worker_service_account, ".gserviceaccount.com")
  migrator_db_user = trimsuffix(var.migrator_service_account, ".gserviceaccount.com")
  # IAM conditions below limit the Cloud SQL roles to this instance.
  instance_condition = "resource.name == \"projects/${var.project_id}/instances/${google_sql_database_instance.event_store.name}\" && resource.type == \"sqladmin.googleapis.com/Instance\""
  database_accounts = {
    worker   = var.worker_service_account
    migrator = var.migrator_service_account
  }
}

resource "google_sql_user" "worker" {
  name     = local.worker_db_user
  project  = var.project_id
  instance = google_sql_database_instance.event_store.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

resource "google_sql_user" "migrator" {
  name     = local.migrator_db_user
  project  = var.project_id
  instance = google_sql_database_instance.event_store.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# Connecting (Auth Proxy or connector: roles/cloudsql.client) and logging in as an IAM user
# (roles/cloudsql.instanceUser), for the workers and the migrator only, on this instance only.
# The web tier's service account gets no Cloud SQL role at all.
resource "google_project_iam_member" "sql_client" {
  for_each = local.database_accounts

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${each.value}"

  condition {
    title      = "event-store-${each.key}-client"
    expression = local.instance_condition
  }
}

resource "google_project_iam_member" "sql_instance_user" {
  for_each = local.database_accounts

  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = "serviceAccount:${each.value}"

  condition {
    title      = "event-store-${each.key}-login"
    expression = local.instance_condition
  }
}
