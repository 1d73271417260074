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
