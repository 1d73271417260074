# SuiteX event backbone: Pub/Sub topics and subscriptions, the claim-check bucket, and a NEW
# dedicated HA Cloud SQL (MySQL 8.0) instance for the append-only event store.
#
# The existing SuiteX primary database is never managed, imported or referenced here (see
# README.md): this configuration only adds resources beside it. The existing VPC network is read
# through a data source.

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

# The existing SuiteX network (read only).
data "google_compute_network" "suitex" {
  name    = var.network_name
  project = var.project_id
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

module "pubsub" {
  source = "./modules/pubsub"

  project_id             = var.project_id
  region                 = var.region
  topic_names            = var.topic_names
  raw_subscription_name  = var.raw_subscription_name
  dlq_subscription_name  = var.dlq_subscription_name
  merged_subscriptions   = var.merged_subscriptions
  kms_key_name           = var.pubsub_kms_key_name
  pubsub_service_agent   = local.pubsub_service_agent
  web_service_account    = var.web_service_account
  web_publishes_directly = var.web_publishes_directly
  relay_service_account  = var.relay_service_account
  worker_service_account = var.worker_service_account
}

module "payload_bucket" {
  source = "./modules/payload_bucket"

  project_id             = var.project_id
  name                   = var.payload_bucket_name
  location               = var.region
  retention_days         = 30
  web_service_account    = var.web_service_account
  web_publishes_directly = var.web_publishes_directly
  relay_service_account  = var.relay_service_account
  worker_service_account = var.worker_service_account
}

module "ledger_digests" {
  source = "./modules/ledger_digests"

  project_id             = var.project_id
  name                   = var.ledger_digest_bucket_name
  location               = var.region
  worker_service_account = var.worker_service_account
}

module "event_store_sql" {
  source = "./modules/event_store_sql"

  project_id                    = var.project_id
  region                        = var.region
  instance_name                 = var.sql_instance_name
  tier                          = var.sql_tier
  network_id                    = data.google_compute_network.suitex.id
  create_private_service_access = var.create_private_service_access
  worker_service_account        = var.worker_service_account
  migrator_service_account      = var.migrator_service_account
}
