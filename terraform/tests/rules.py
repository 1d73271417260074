"""Every rule the event backbone's infrastructure must follow, as functions of a `Config`.

Each rule raises AssertionError with a message naming what is wrong. `test_rules.py` applies them
to `terraform/`; `test_broken_fixtures.py` proves each one fails on a copy missing its rule.
"""

from __future__ import annotations

import re

from tfconfig import Config, Item, block, blocks

VAR_REF = re.compile(r"^\$\{var\.([A-Za-z0-9_]+)\}$")
LOCAL_REF = re.compile(r"^\$\{local\.([A-Za-z0-9_]+)\}$")


def module_of(item: Item, cfg: Config) -> str | None:
    rel = item.file.relative_to(cfg.root).parts
    return rel[1] if len(rel) > 2 and rel[0] == "modules" else None


def resolve(cfg: Config, item: Item, value):
    """A `${var.x}` value is replaced by the default of `x` in the item's module, and a
    `${local.x}` value by that local's value."""
    m = VAR_REF.match(value) if isinstance(value, str) else None
    if m:
        return cfg.variable_default(m.group(1), module=module_of(item, cfg))
    m = LOCAL_REF.match(value) if isinstance(value, str) else None
    return cfg.local(m.group(1), module=module_of(item, cfg)) if m else value


def module_call(cfg: Config, name: str) -> dict:
    return cfg.one("module", "", name).body


def iam_bindings(cfg: Config, type_: str, member_contains: str) -> list[Item]:
    return [i for i in cfg.of("resource", type_) if member_contains in str(i.body.get("member", ""))]


# --- Pub/Sub -------------------------------------------------------------------------------


def topics(cfg: Config):
    found = {t.name: t.body.get("name") for t in cfg.of("resource", "google_pubsub_topic")}
    assert found == {
        "raw": "${var.topic_names.raw}",
        "merged": "${var.topic_names.merged}",
        "dlq": "${var.topic_names.dlq}",
    }, f"topics must be raw, merged and dlq named by var.topic_names; found {found}"
    assert cfg.variable_default("topic_names") == {
        "raw": "events.raw",
        "merged": "events.merged",
        "dlq": "events.dlq",
    }, "topic names must default to events.raw, events.merged, events.dlq"


def raw_subscription(cfg: Config):
    sub = cfg.one("resource", "google_pubsub_subscription", "raw")
    assert sub.body.get("topic") == "${google_pubsub_topic.raw.id}", "events.raw-sub must subscribe to events.raw"
    assert sub.body.get("enable_message_ordering") is True, "events.raw-sub must have message ordering enabled"
    dlp = block(sub.body, "dead_letter_policy")
    assert dlp.get("dead_letter_topic") == "${google_pubsub_topic.dlq.id}", "dead letters must go to events.dlq"
    attempts = resolve(cfg, sub, dlp.get("max_delivery_attempts"))
    assert attempts == 5, f"max_delivery_attempts must be 5; it is {attempts}"
    retry = block(sub.body, "retry_policy")
    assert retry.get("minimum_backoff") and retry.get("maximum_backoff"), "events.raw-sub needs a retry policy with backoffs"
    assert cfg.variable_default("raw_subscription_name") == "events.raw-sub"


def dlq_subscription(cfg: Config):
    sub = cfg.one("resource", "google_pubsub_subscription", "dlq")
    assert sub.body.get("topic") == "${google_pubsub_topic.dlq.id}", "events.dlq-sub must subscribe to events.dlq"
    assert block(sub.body, "expiration_policy").get("ttl") == "", "events.dlq-sub must never expire"
    assert cfg.variable_default("dlq_subscription_name") == "events.dlq-sub"
    retention = resolve(cfg, sub, sub.body.get("message_retention_duration"))
    assert retention == "2678400s", f"events.dlq-sub must keep dead letters 31 days, Pub/Sub's maximum (it keeps {retention})"


def dlq_watch_subscription(cfg: Config):
    sub = cfg.one("resource", "google_pubsub_subscription", "dlq_watch")
    assert sub.body.get("topic") == "${google_pubsub_topic.dlq.id}", "the dead-letter watch must subscribe to events.dlq"
    assert sub.body.get("name") == "${var.topic_names.dlq}-watch", "the dead-letter watch is <dlq topic>-watch, the name the workers derive"
    assert block(sub.body, "expiration_policy").get("ttl") == "", "the dead-letter watch must never expire"


def merged_subscriptions(cfg: Config):
    sub = cfg.one("resource", "google_pubsub_subscription", "merged")
    assert sub.body.get("for_each") == "${var.merged_subscriptions}", "merged subscriptions must come from a variable"
    assert sub.body.get("topic") == "${google_pubsub_topic.merged.id}", "merged subscriptions must be on events.merged"
    assert cfg.variable_default("merged_subscriptions") == {}, "no merged subscription unless configured"


def pubsub_service_agent(cfg: Config):
    publisher = [
        b
        for b in cfg.of("resource", "google_pubsub_topic_iam_member")
        if b.body.get("topic") == "${google_pubsub_topic.dlq.name}" and b.body.get("member") == "${var.pubsub_service_agent}"
    ]
    assert [b.body.get("role") for b in publisher] == ["roles/pubsub.publisher"], "the Pub/Sub service agent must publish to events.dlq"
    subscriber = [
        b
        for b in cfg.of("resource", "google_pubsub_subscription_iam_member")
        if b.body.get("subscription") == "${google_pubsub_subscription.raw.name}"
        and b.body.get("member") == "${var.pubsub_service_agent}"
    ]
    assert [b.body.get("role") for b in subscriber] == ["roles/pubsub.subscriber"], "the Pub/Sub service agent must subscribe to events.raw-sub"
    agent = next((i for i in cfg.items if i.kind == "module" and i.name == "pubsub"), None)
    assert agent and agent.body.get("pubsub_service_agent") == "${local.pubsub_service_agent}"
    main = (cfg.root / "main.tf").read_text()
    assert "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com" in main, (
        "the service agent must be service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
    )


def web_pubsub_access(cfg: Config):
    grants = [
        (b.type, b.body.get("topic") or b.body.get("subscription"), b.body.get("role"))
        for t in ("google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member")
        for b in iam_bindings(cfg, t, "var.web_service_account")
    ]
    assert grants == [("google_pubsub_topic_iam_member", "${google_pubsub_topic.raw.name}", "roles/pubsub.publisher")], (
        f"the web tier may only publish to events.raw; it has {grants}"
    )


def worker_pubsub_access(cfg: Config):
    grants = {
        (b.body.get("topic") or b.body.get("subscription"), b.body.get("role"))
        for t in ("google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member")
        for b in iam_bindings(cfg, t, "var.worker_service_account")
    }
    for need in [
        ("${google_pubsub_subscription.raw.name}", "roles/pubsub.subscriber"),
        ("${google_pubsub_topic.merged.name}", "roles/pubsub.publisher"),
        ("${google_pubsub_subscription.dlq_watch.name}", "roles/pubsub.subscriber"),
    ]:
        assert need in grants, f"the worker needs {need[1]} on {need[0]}; it has {sorted(grants)}"


def relay_access(cfg: Config):
    grants = sorted(
        (b.type, b.body.get("topic") or b.body.get("bucket"), b.body.get("role"))
        for t in ("google_pubsub_topic_iam_member", "google_pubsub_subscription_iam_member", "google_storage_bucket_iam_member")
        for b in iam_bindings(cfg, t, "var.relay_service_account")
    )
    assert grants == [
        ("google_pubsub_topic_iam_member", "${google_pubsub_topic.raw.name}", "roles/pubsub.publisher"),
        ("google_storage_bucket_iam_member", "${google_storage_bucket.payloads.name}", "roles/storage.objectCreator"),
    ], f"the spool relay may only publish to events.raw and create claim-check objects; it has {grants}"
    for t, name in (("google_pubsub_topic_iam_member", "raw_web_publisher"), ("google_storage_bucket_iam_member", "web_creator")):
        web = cfg.one("resource", t, name)
        assert web.body.get("count") == "${var.web_publishes_directly ? 1 : 0}", f"{name} must go when the web tier only spools"


# --- Claim-check bucket --------------------------------------------------------------------


def payload_bucket(cfg: Config):
    bucket = cfg.one("resource", "google_storage_bucket", "payloads")
    assert cfg.variable_default("payload_bucket_name") == "suitex-payload-snapshots"
    assert bucket.body.get("uniform_bucket_level_access") is True, "the bucket must use uniform bucket-level access"
    assert bucket.body.get("public_access_prevention") == "enforced", "public access prevention must be enforced"
    rules = blocks(bucket.body, "lifecycle_rule")
    deletes = [r for r in rules if block(r, "action").get("type") == "Delete"]
    assert len(deletes) == 1, "the bucket needs one lifecycle Delete rule"
    age = resolve(cfg, bucket, block(deletes[0], "condition").get("age"))
    passed = module_call(cfg, "payload_bucket").get("retention_days")
    assert age == 30 and passed == 30, f"objects must be deleted after 30 days (module default {age}, root passes {passed})"


def payload_bucket_access(cfg: Config):
    def roles(member: str) -> list[str]:
        return sorted(b.body.get("role") for b in iam_bindings(cfg, "google_storage_bucket_iam_member", member))

    assert roles("var.web_service_account") == ["roles/storage.objectCreator"], (
        f"the web tier may only create objects; it has {roles('var.web_service_account')}"
    )
    assert "roles/storage.objectViewer" in roles("var.worker_service_account"), "the worker must be able to read objects"


def ledger_digests(cfg: Config):
    bucket = cfg.one("resource", "google_storage_bucket", "digests")
    assert cfg.variable_default("ledger_digest_bucket_name") == "suitex-ledger-digests"
    assert bucket.body.get("uniform_bucket_level_access") is True, "the digest bucket must use uniform bucket-level access"
    assert bucket.body.get("public_access_prevention") == "enforced", "the digest bucket's public access prevention must be enforced"
    policy = block(bucket.body, "retention_policy")
    assert policy.get("is_locked") is True, "the digest bucket's retention policy must be locked"
    period = resolve(cfg, bucket, policy.get("retention_period"))
    assert isinstance(period, int) and period >= 10 * 365 * 24 * 3600, f"digests must be kept at least ten years (retention {period})"
    assert not blocks(bucket.body, "lifecycle_rule"), "no lifecycle rule may delete digests"
    roles = sorted(
        b.body.get("role")
        for b in cfg.of("resource", "google_storage_bucket_iam_member")
        if "google_storage_bucket.digests" in str(b.body.get("bucket", ""))
    )
    assert roles == ["roles/storage.objectCreator", "roles/storage.objectViewer"], (
        f"on the digest bucket the worker may only create and read objects; the bindings are {roles}"
    )


# --- Cloud SQL -----------------------------------------------------------------------------


def sql_instance(cfg: Config):
    inst = cfg.one("resource", "google_sql_database_instance", "event_store")
    assert inst.body.get("database_version") == "MYSQL_8_0", "the event store must be MySQL 8.0"
    assert inst.body.get("deletion_protection") is True, "Terraform deletion protection must be on"
    settings = block(inst.body, "settings")
    assert settings.get("availability_type") == "REGIONAL", "the instance must be highly available (REGIONAL)"
    assert settings.get("deletion_protection_enabled") is True, "the instance's own deletion protection must be on"
    backup = block(settings, "backup_configuration")
    assert backup.get("enabled") is True, "automated backups must be on"
    assert backup.get("binary_log_enabled") is True, "binary logging (point-in-time recovery) must be on"
    days = resolve(cfg, inst, backup.get("transaction_log_retention_days"))
    assert isinstance(days, int) and days >= 1, f"binary logs must be retained (transaction_log_retention_days is {days})"
    ip = block(settings, "ip_configuration")
    assert ip.get("ipv4_enabled") is False, "the instance must have no public IP"
    assert ip.get("private_network") == "${var.network_id}", "the instance must have a private IP on the network"
    assert module_call(cfg, "event_store_sql").get("network_id") == "${data.google_compute_network.suitex.id}", (
        "the network must be the existing SuiteX network (a data source)"
    )
    ssl = resolve(cfg, inst, ip.get("ssl_mode"))
    assert ssl in ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"), f"TLS must be required (ssl_mode is {ssl})"
    window = block(settings, "maintenance_window")
    assert window.get("day") is not None and window.get("hour") is not None, "a maintenance window must be set"
    assert block(inst.body, "lifecycle").get("prevent_destroy") is True, "prevent_destroy must be set"


def database_flag(cfg: Config, name: str):
    inst = cfg.one("resource", "google_sql_database_instance", "event_store")
    flags = {f.get("name"): f.get("value") for f in blocks(block(inst.body, "settings"), "database_flags")}
    return flags.get(name)


def sql_database_and_users(cfg: Config):
    db = cfg.one("resource", "google_sql_database", "event_store")
    assert resolve(cfg, db, db.body.get("name")) == "event_store", "the database must be event_store"
    assert database_flag(cfg, "cloudsql_iam_authentication") == "on", "IAM database authentication must be on (cloudsql_iam_authentication)"
    users = cfg.of("resource", "google_sql_user")
    for user in users:
        # A BUILT_IN user created through the API gets cloudsqlsuperuser and a password.
        assert user.body.get("type") == "CLOUD_IAM_SERVICE_ACCOUNT", (
            f"{user.address} must be an IAM service-account user (type CLOUD_IAM_SERVICE_ACCOUNT), never an API-created password user"
        )
        for arg in ("password", "password_wo", "password_wo_version"):
            assert arg not in user.body, f"{user.address} must not have a password ({arg})"
    names = {u.name: resolve(cfg, u, u.body.get("name")) for u in users}
    assert "var.worker_service_account" in str(names.get("worker")), (
        f"the worker's database user must be its service account's IAM user; users are {names}"
    )


def cloud_sql_roles(cfg: Config) -> list[tuple[str, str]]:
    """(member, role) for every project IAM member granting a Cloud SQL role, with `each.value`
    expanded through the resource's `for_each` local."""
    out = []
    for b in cfg.of("resource", "google_project_iam_member"):
        role = str(b.body.get("role", ""))
        member = str(b.body.get("member", ""))
        each = str(b.body.get("for_each", ""))
        m = LOCAL_REF.match(each)
        if "${each.value}" in member and m:
            values = cfg.local(m.group(1), module=module_of(b, cfg)) or {}
            out += [(member.replace("${each.value}", str(v)), role) for v in values.values()]
        else:
            out.append((member, role))
    return [(m, r) for m, r in out if r.startswith("roles/cloudsql")]


def web_has_no_database_access(cfg: Config):
    roles = [(m, r) for m, r in cloud_sql_roles(cfg) if "web_service_account" in m]
    assert not roles, f"the web tier's service account must have no Cloud SQL role; it has {roles}"
    for user in cfg.of("resource", "google_sql_user"):
        assert "web_service_account" not in str(user.body.get("name")), f"the web tier must have no database user ({user.address})"
    for call in [module_call(cfg, "event_store_sql")]:
        assert "${var.web_service_account}" not in call.values(), "the event store module must not know the web tier's account"


def worker_database_access(cfg: Config):
    roles = {r for m, r in cloud_sql_roles(cfg) if "var.worker_service_account" in m}
    for need in ("roles/cloudsql.client", "roles/cloudsql.instanceUser"):
        assert need in roles, f"the worker's service account needs {need} to reach the event store; it has {sorted(roles)}"
    for b in cfg.of("resource", "google_project_iam_member"):
        if str(b.body.get("role", "")).startswith("roles/cloudsql"):
            expression = str(resolve(cfg, b, block(b.body, "condition").get("expression", "")))
            assert "instances/" in expression, f"{b.address} must be limited to the event store instance by an IAM condition"


def private_service_access(cfg: Config):
    conn = cfg.one("resource", "google_service_networking_connection", "private_service_access")
    assert conn.body.get("count") == "${var.create_private_service_access ? 1 : 0}", "the peering must be optional"
    assert conn.body.get("deletion_policy") == "ABANDON", "the peering must be abandoned, never deleted"
    assert cfg.variable_default("create_private_service_access") is False, "creating the peering must be off by default"


def existing_primary_untouched(cfg: Config):
    instances = cfg.of("resource", "google_sql_database_instance")
    assert [i.name for i in instances] == ["event_store"], (
        f"only the new event store instance may be managed; found {[i.address for i in instances]}"
    )
    assert not cfg.of("import") and not cfg.of("moved"), "nothing may be imported or moved into this configuration"
    assert not cfg.of("resource", "google_compute_network"), "the existing network must only be read (data source)"


def outputs(cfg: Config):
    names = {o.name for o in cfg.of("output") if o.file.parent == cfg.root}
    want = {
        "topic_ids",
        "subscription_ids",
        "payload_bucket_name",
        "ledger_digest_bucket_name",
        "event_store_connection_name",
        "event_store_private_ip",
        "event_store_server_ca_cert",
    }
    assert want <= names, f"missing outputs: {sorted(want - names)}"
    for o in cfg.of("output"):
        assert "password" not in str(o.body.get("value", "")), f"output {o.name} exposes a password"


def documented(cfg: Config):
    for i in cfg.of("variable") + cfg.of("output"):
        assert str(i.body.get("description", "")).strip(), f"{i.kind} {i.name} in {i.file.name} has no description"


RULES = [
    topics,
    raw_subscription,
    dlq_subscription,
    dlq_watch_subscription,
    merged_subscriptions,
    pubsub_service_agent,
    web_pubsub_access,
    worker_pubsub_access,
    relay_access,
    payload_bucket,
    payload_bucket_access,
    ledger_digests,
    sql_instance,
    sql_database_and_users,
    web_has_no_database_access,
    worker_database_access,
    private_service_access,
    existing_primary_untouched,
    outputs,
    documented,
]
