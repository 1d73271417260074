//! Test support: fresh, isolated topology on the local emulators, and helpers to read back what
//! was published. Every test gets its own topics, subscriptions and bucket (unique suffix), so
//! tests run in parallel and never see each other's messages.
//!
//! The emulators must be running (`scripts/services start`, which `scripts/test` calls). A test
//! that cannot reach them fails with a message saying so; none is skipped.
#![allow(dead_code)]

use google_cloud_pubsub::model::{Message, Subscription};
use std::time::Duration;
use suitex_events::config::{Config, Names};
use suitex_events::provision::{ProvisionOptions, provision};

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. Start the local services and export their addresses: \
             `scripts/services start && eval \"$(scripts/services env)\"` (scripts/test does both)"
        )
    })
}

/// A short unique suffix.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Names with a unique suffix, so each test has topology of its own.
pub fn unique_names(prefix: &str) -> Names {
    let s = format!("{prefix}-{}", unique());
    Names {
        raw_topic: format!("raw-{s}"),
        merged_topic: format!("merged-{s}"),
        dlq_topic: format!("dlq-{s}"),
        raw_subscription: format!("raw-{s}-sub"),
        dlq_subscription: format!("dlq-{s}-sub"),
        payload_bucket: format!("b-{s}"),
    }
}

pub fn emulator_config(prefix: &str) -> suitex_events::config::ConfigBuilder {
    Config::builder("suitex-local")
        .emulators(&required_env("PUBSUB_EMULATOR_HOST"), &required_env("STORAGE_EMULATOR_HOST"))
        .names(unique_names(prefix))
}

/// Provisions `config`'s topology and an ORDERED probe subscription on the raw topic (the
/// emulator cannot order `events.raw-sub` itself, which carries a dead-letter policy).
/// Returns the probe subscription's path.
pub async fn provision_with_probe(config: &Config) -> String {
    provision(config, &ProvisionOptions { without_ordering: true, merged_subscriptions: vec![] })
        .await
        .expect("provisioning on the emulators (are they running? scripts/services start)");
    let probe = config.subscription_path(&format!("{}-probe", config.names().raw_topic));
    let admin = suitex_events::clients::subscription_admin(config).await.unwrap();
    admin
        .create_subscription()
        .with_request(
            Subscription::new()
                .set_name(&probe)
                .set_topic(config.raw_topic_path())
                .set_ack_deadline_seconds(60)
                .set_enable_message_ordering(true),
        )
        .send()
        .await
        .expect("creating the probe subscription");
    probe
}

/// Receives (and acks) messages until `n` arrived or `timeout` passed.
pub async fn receive(config: &Config, subscription: &str, n: usize, timeout: Duration) -> Vec<Message> {
    let subscriber = suitex_events::clients::subscriber(config).await.unwrap();
    let mut stream = subscriber.subscribe(subscription).build();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok((msg, handler)))) => {
                handler.ack();
                got.push(msg);
            }
            Ok(Some(Err(e))) => panic!("streaming pull on {subscription} failed: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// Receives (and acks) until every message whose `event_id` attribute is in `sentinels` has
/// arrived and returns the other messages received meanwhile. Proves absence without waiting on
/// a clock: whatever was published on a sentinel's ordering key before it arrives first, so
/// emit one sentinel per key in question.
pub async fn receive_until(
    config: &Config,
    subscription: &str,
    sentinels: &[&str],
    timeout: Duration,
) -> Vec<Message> {
    let subscriber = suitex_events::clients::subscriber(config).await.unwrap();
    let mut stream = subscriber.subscribe(subscription).build();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting: std::collections::HashSet<&str> = sentinels.iter().copied().collect();
    let mut others = Vec::new();
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok((msg, handler)))) => {
                handler.ack();
                if !waiting.remove(attr(&msg, "event_id")) {
                    others.push(msg);
                }
            }
            Ok(Some(Err(e))) => panic!("streaming pull on {subscription} failed: {e}"),
            Ok(None) | Err(_) => {
                panic!("sentinels {waiting:?} never arrived on {subscription} within {timeout:?}")
            }
        }
    }
    others
}

/// The storage emulator's base URL.
pub fn storage_url() -> String {
    match suitex_events::config::Endpoint::emulator(&required_env("STORAGE_EMULATOR_HOST")) {
        suitex_events::config::Endpoint::Emulator(url) => url,
        suitex_events::config::Endpoint::Google => unreachable!(),
    }
}

/// Downloads an object straight from the storage emulator's JSON API (not through the SDK).
pub async fn download(bucket: &str, object: &str) -> Vec<u8> {
    let url = format!("{}/storage/v1/b/{bucket}/o/{}?alt=media", storage_url(), object.replace('/', "%2F"));
    let resp = reqwest::get(&url).await.expect("GET object");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.bytes().await.unwrap().to_vec()
}

/// Object names in `bucket` under `prefix`, straight from the emulator.
pub async fn list_objects(bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/storage/v1/b/{bucket}/o?prefix={prefix}", storage_url());
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    v.get("items")
        .and_then(|i| i.as_array())
        .map(|items| items.iter().map(|o| o["name"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

pub fn attr<'a>(m: &'a Message, key: &str) -> &'a str {
    m.attributes.get(key).map(String::as_str).unwrap_or_default()
}

/// The MariaDB server the tests use (`SUITEX_TEST_MYSQL_URL`, `mysql://user[:password]@host:port`).
pub fn mysql_server() -> suitex_events::store::StoreSettings {
    let url = required_env("SUITEX_TEST_MYSQL_URL");
    let rest = url
        .strip_prefix("mysql://")
        .unwrap_or_else(|| panic!("SUITEX_TEST_MYSQL_URL {url:?} is not mysql://…"));
    let (creds, addr) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
    let addr = addr.trim_end_matches('/');
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "3306"));
    suitex_events::store::StoreSettings::from_lookup(|k| match k {
        "DB_EVENT_STORE_HOST" => Some(host.to_string()),
        "DB_EVENT_STORE_PORT" => Some(port.to_string()),
        "DB_EVENT_STORE_USERNAME" => Some(user.to_string()),
        "DB_EVENT_STORE_PASSWORD" => Some(password.to_string()),
        "DB_EVENT_STORE_DATABASE" => Some("mysql".to_string()),
        "DB_EVENT_STORE_SSL_MODE" => Some("disabled".to_string()),
        _ => None,
    })
    .unwrap()
}

/// A database of its own on the test server, migrated; dropped when this is dropped.
pub struct TestDb {
    pub settings: suitex_events::store::StoreSettings,
    pub store: suitex_events::store::EventStore,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let server = mysql_server();
        let name = format!("t_{}_{}", prefix.replace('-', "_"), unique());
        let admin = suitex_events::store::EventStore::connect(&server).await.unwrap();
        admin
            .execute(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .await
            .unwrap_or_else(|e| {
                panic!("MariaDB at {} is not usable ({e}); scripts/services start", server.describe())
            });
        admin.pool().close().await;
        let settings = server.with_database(&name);
        let store = suitex_events::store::EventStore::open(&settings).await.unwrap();
        store.migrate().await.unwrap();
        TestDb { settings, store }
    }

    /// Rows in `event_store`.
    pub async fn rows(&self) -> u64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_store")
            .fetch_one(self.store.pool())
            .await
            .unwrap() as u64
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and the database must not outlive the test.
        let s = &self.settings;
        let _ = std::process::Command::new("mariadb")
            .args([
                "--protocol=tcp",
                &format!("-h{}", s.host),
                &format!("-P{}", s.port),
                &format!("-u{}", s.username),
                "-e",
                &format!("DROP DATABASE IF EXISTS `{}`", s.database),
            ])
            .env("MYSQL_PWD", &s.password)
            .status();
    }
}
