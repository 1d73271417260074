"""Every rule fails on a configuration that breaks it — for the right reason.

Each case copies terraform/ to a temporary directory, breaks one rule with a text edit, and
checks that the rule's function raises with the expected message. A last case breaks them all at
once and runs the whole structural suite against that copy, which must fail every rule test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rules
from arguments import unknown_names
from tfconfig import load

TERRAFORM = Path(__file__).resolve().parent.parent

# (rule, file, text to find, replacement, fragment of the expected failure)
BREAKS = [
    (rules.topics, "modules/pubsub/main.tf", 'resource "google_pubsub_topic" "merged"', 'resource "google_pubsub_topic" "merged_feed"', "topics must be raw, merged and dlq"),
    (rules.raw_subscription, "modules/pubsub/main.tf", "enable_message_ordering    = true", "enable_message_ordering    = false", "message ordering enabled"),
    (rules.raw_subscription, "modules/pubsub/variables.tf", "default     = 5", "default     = 7", "max_delivery_attempts must be 5"),
    (rules.raw_subscription, "modules/pubsub/main.tf", "  retry_policy {", "  retry_policyx {", "block retry_policy is missing"),
    (rules.dlq_subscription, "modules/pubsub/main.tf", 'topic   = google_pubsub_topic.dlq.id\n\n  ack_deadline_seconds       = 60\n  message_retention_duration = local.dlq_retention\n  retain_acked_messages', 'topic   = google_pubsub_topic.raw.id\n\n  ack_deadline_seconds       = 60\n  message_retention_duration = local.dlq_retention\n  retain_acked_messages', "events.dlq-sub must subscribe to events.dlq"),
    (rules.dlq_watch_subscription, "modules/pubsub/main.tf", 'name    = "${var.topic_names.dlq}-watch"', 'name    = "events.dlq-parking"', "the name the workers derive"),
    (rules.worker_pubsub_access, "modules/pubsub/main.tf", 'subscription = google_pubsub_subscription.dlq_watch.name\n  role         = "roles/pubsub.subscriber"', 'subscription = google_pubsub_subscription.dlq_watch.name\n  role         = "roles/pubsub.viewer"', "roles/pubsub.subscriber on ${google_pubsub_subscription.dlq_watch.name}"),
    (rules.merged_subscriptions, "modules/pubsub/main.tf", "for_each = var.merged_subscriptions", "for_each = { fixed = {} }", "must come from a variable"),
    (rules.pubsub_service_agent, "modules/pubsub/main.tf", 'topic   = google_pubsub_topic.dlq.name\n  role    = "roles/pubsub.publisher"', 'topic   = google_pubsub_topic.dlq.name\n  role    = "roles/pubsub.viewer"', "service agent must publish to events.dlq"),
    (rules.pubsub_service_agent, "modules/pubsub/main.tf", 'subscription = google_pubsub_subscription.raw.name\n  role         = "roles/pubsub.subscriber"\n  member       = var.pubsub_service_agent', 'subscription = google_pubsub_subscription.dlq.name\n  role         = "roles/pubsub.subscriber"\n  member       = var.pubsub_service_agent', "service agent must subscribe to events.raw-sub"),
    (rules.web_pubsub_access, "modules/pubsub/main.tf", 'topic   = google_pubsub_topic.raw.name\n  role    = "roles/pubsub.publisher"\n  member  = "serviceAccount:${var.web_service_account}"', 'topic   = google_pubsub_topic.raw.name\n  role    = "roles/pubsub.editor"\n  member  = "serviceAccount:${var.web_service_account}"', "the web tier may only publish to events.raw"),
    (rules.worker_pubsub_access, "modules/pubsub/main.tf", 'topic   = google_pubsub_topic.merged.name\n  role    = "roles/pubsub.publisher"', 'topic   = google_pubsub_topic.merged.name\n  role    = "roles/pubsub.viewer"', "the worker needs roles/pubsub.publisher"),
    (rules.payload_bucket, "main.tf", "retention_days         = 30", "retention_days         = 90", "deleted after 30 days"),
    (rules.dlq_subscription, "modules/pubsub/main.tf", 'dlq_retention = "2678400s"', 'dlq_retention = "604800s"', "keep dead letters 31 days"),
    (rules.payload_bucket, "modules/payload_bucket/main.tf", "uniform_bucket_level_access = true", "uniform_bucket_level_access = false", "uniform bucket-level access"),
    (rules.payload_bucket, "modules/payload_bucket/main.tf", 'public_access_prevention    = "enforced"', 'public_access_prevention    = "inherited"', "public access prevention must be enforced"),
    (rules.relay_access, "modules/pubsub/main.tf", 'topic   = google_pubsub_topic.raw.name\n  role    = "roles/pubsub.publisher"\n  member  = "serviceAccount:${var.relay_service_account}"', 'topic   = google_pubsub_topic.raw.name\n  role    = "roles/pubsub.editor"\n  member  = "serviceAccount:${var.relay_service_account}"', "the spool relay may only publish to events.raw"),
    (rules.payload_bucket_access, "modules/payload_bucket/main.tf", 'role   = "roles/storage.objectCreator"\n  member = "serviceAccount:${var.web_service_account}"', 'role   = "roles/storage.objectAdmin"\n  member = "serviceAccount:${var.web_service_account}"', "the web tier may only create objects"),
    (rules.ledger_digests, "modules/ledger_digests/main.tf", "is_locked        = true", "is_locked        = false", "retention policy must be locked"),
    (rules.ledger_digests, "modules/ledger_digests/variables.tf", "default     = 315360000", "default     = 2592000", "at least ten years"),
    (rules.ledger_digests, "modules/ledger_digests/main.tf", 'role   = "roles/storage.objectCreator"\n  member = "serviceAccount:${var.worker_service_account}"', 'role   = "roles/storage.objectAdmin"\n  member = "serviceAccount:${var.worker_service_account}"', "may only create and read objects"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", 'availability_type = "REGIONAL"', 'availability_type = "ZONAL"', "highly available"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", 'database_version = "MYSQL_8_0"', 'database_version = "MYSQL_5_7"', "must be MySQL 8.0"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "binary_log_enabled             = true", "binary_log_enabled             = false", "binary logging"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "enabled                        = true", "enabled                        = false", "automated backups"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "ipv4_enabled    = false", "ipv4_enabled    = true", "no public IP"),
    (rules.sql_instance, "modules/event_store_sql/variables.tf", 'default     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"', 'default     = "ALLOW_UNENCRYPTED_AND_ENCRYPTED"', "TLS must be required"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "  deletion_protection = true", "  deletion_protection = false", "Terraform deletion protection"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "deletion_protection_enabled = true", "deletion_protection_enabled = false", "own deletion protection"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "prevent_destroy = true", "prevent_destroy = false", "prevent_destroy"),
    (rules.sql_instance, "modules/event_store_sql/main.tf", "    maintenance_window {", "    maintenance_windowx {", "maintenance_window is missing"),
    (rules.sql_database_and_users, "modules/event_store_sql/main.tf", 'name     = local.worker_db_user\n  project  = var.project_id\n  instance = google_sql_database_instance.event_store.name\n  type     = "CLOUD_IAM_SERVICE_ACCOUNT"', 'name     = local.worker_db_user\n  project  = var.project_id\n  instance = google_sql_database_instance.event_store.name\n  password = "rotate-me"', "never an API-created password user"),
    (rules.sql_database_and_users, "modules/event_store_sql/main.tf", 'type     = "CLOUD_IAM_SERVICE_ACCOUNT"\n}', 'type     = "CLOUD_IAM_SERVICE_ACCOUNT"\n  password_wo = var.project_id\n}', "must not have a password"),
    (rules.sql_database_and_users, "modules/event_store_sql/main.tf", 'name  = "cloudsql_iam_authentication"\n      value = "on"', 'name  = "cloudsql_iam_authentication"\n      value = "off"', "IAM database authentication must be on"),
    (rules.web_has_no_database_access, "modules/event_store_sql/main.tf", "    migrator = var.migrator_service_account\n", "    migrator = var.migrator_service_account\n    web      = var.web_service_account\n", "the web tier's service account must have no Cloud SQL role"),
    (rules.worker_database_access, "modules/event_store_sql/main.tf", 'role    = "roles/cloudsql.instanceUser"', 'role    = "roles/cloudsql.viewer"', "needs roles/cloudsql.instanceUser"),
    (rules.worker_database_access, "modules/event_store_sql/main.tf", 'title      = "event-store-${each.key}-client"\n    expression = local.instance_condition', 'title      = "event-store-${each.key}-client"\n    expression = "true"', "limited to the event store instance"),
    (rules.private_service_access, "modules/event_store_sql/main.tf", 'deletion_policy         = "ABANDON"', 'deletion_policy         = "DELETE"', "abandoned, never deleted"),
    (rules.private_service_access, "variables.tf", "type        = bool\n  default     = false", "type        = bool\n  default     = true", "off by default"),
    (rules.existing_primary_untouched, "main.tf", "module \"pubsub\" {", 'import {\n  to = google_sql_database_instance.primary\n  id = "suitex-primary"\n}\n\nresource "google_sql_database_instance" "primary" {\n  name             = "suitex-primary"\n  database_version = "MYSQL_8_0"\n}\n\nmodule "pubsub" {', "only the new event store instance"),
    (rules.outputs, "outputs.tf", 'output "event_store_private_ip"', 'output "event_store_ip"', "missing outputs"),
    (rules.documented, "modules/payload_bucket/outputs.tf", 'description = "The bucket\'s name."', 'description = ""', "has no description"),
]


def broken_copy(tmp_path: Path, edits) -> Path:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns("tests", ".terraform*"))
    for _, file, old, new, _ in edits:
        path = copy / file
        text = path.read_text()
        assert old in text, f"the break for {file} no longer matches the configuration: {old!r}"
        path.write_text(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize("brk", BREAKS, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BREAKS)])
def test_rule_fails_on_a_configuration_breaking_it(tmp_path, brk):
    rule, _, _, _, expected = brk
    rule(load(TERRAFORM))  # holds on the real configuration
    with pytest.raises(AssertionError) as failure:
        rule(load(broken_copy(tmp_path, [brk])))
    assert expected in str(failure.value), f"{rule.__name__} failed for another reason: {failure.value}"


def test_every_rule_has_a_break():
    assert {b[0] for b in BREAKS} == set(rules.RULES)


def test_an_undocumented_argument_is_caught(tmp_path):
    brk = (None, "modules/pubsub/main.tf", "ack_deadline_seconds       = 60", "ack_deadline_secs          = 60", "")
    problems = unknown_names(load(broken_copy(tmp_path, [brk])))
    assert any("google_pubsub_subscription.raw: ack_deadline_secs is not a documented argument" in p for p in problems), problems


def test_the_whole_suite_fails_on_a_copy_breaking_every_rule(tmp_path):
    # One break per rule (the first listed), applied together.
    first = {}
    for b in BREAKS:
        first.setdefault(b[0], b)
    copy = broken_copy(tmp_path, list(first.values()))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider", "test_rules.py"],
        cwd=Path(__file__).parent,
        env={**os.environ, "SUITEX_TF_DIR": str(copy)},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0, result.stdout
    for rule in rules.RULES:
        assert f"FAILED test_rules.py::test_rule[{rule.__name__}]" in result.stdout, (
            f"{rule.__name__} did not fail on the broken copy:\n{result.stdout}"
        )
