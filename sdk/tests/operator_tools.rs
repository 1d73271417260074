//! The operator tools are safe on production subscriptions: `dlq list` honours its limit
//! without taking the whole backlog, `dlq redrive` never re-publishes one dead letter twice even
//! when the backlog takes longer than a lease, `--dry-run` changes nothing, `peek` refuses the
//! worker's own subscription, and dead letters are kept for Pub/Sub's 31-day maximum.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use serde_json::json;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use suitex_events::worker::dlq::{self, Filter};
use suitex_events::{Config, Event};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

/// Runs `suitex-events args` with `config`'s settings and nothing else from this environment.
fn cli(config: &Config, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(config.to_settings())
        .output()
        .unwrap()
}

/// Publishes `n` dead letters (as Pub/Sub leaves them) to the dead-letter topic on the fake.
async fn dead_letters(fake: &pubsub_fake::PubSubFake, config: &Config, n: usize) -> Vec<Event> {
    let publisher = Publisher::builder(config.topic_path(&config.names().dlq_topic))
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let mut events = Vec::new();
    for i in 0..n {
        let e = Event::builder()
            .account_id(81)
            .aggregate("invoice", format!("D-{i}"))
            .event_type("invoice.saved")
            .payload(json!({"i": i}))
            .build()
            .unwrap();
        let mut attrs: Vec<(String, String)> =
            e.attributes().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        attrs.push(("CloudPubSubDeadLetterSourceDeliveryCount".into(), "5".into()));
        publisher
            .publish(
                Message::new()
                    .set_data(e.to_wire_json())
                    .set_ordering_key(e.ordering_key())
                    .set_attributes(attrs),
            )
            .await
            .unwrap();
        events.push(e);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_takes_no_more_than_its_limit_from_the_backlog() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "dlqlimit").await;
    dead_letters(&fake, &config, 40).await;
    let sub = config.subscription_path(&config.names().dlq_subscription);
    let listed = dlq::list(&config, &Filter { limit: 5, ..Filter::default() }).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(fake.delivered(&sub) <= 5, "list took {} of the backlog to show 5", fake.delivered(&sub));
    assert_eq!(fake.backlog(&sub), 40, "listing consumed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_of_a_backlog_that_outlasts_a_lease_publishes_each_dead_letter_once() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "redrive").await;
    // A dead-letter subscription with the shortest ack deadline Pub/Sub allows (10 s).
    let mut names = config.names().clone();
    names.dlq_subscription = "events.dlq-short".into();
    fake.create_subscription(pubsub_fake::Subscription {
        name: config.subscription_path(&names.dlq_subscription),
        topic: config.topic_path(&names.dlq_topic),
        ack_deadline_seconds: 10,
        ..Default::default()
    })
    .unwrap();
    let config = Config::builder(config.project())
        .names(names)
        .pubsub_endpoint(config.pubsub_endpoint().clone())
        .storage_endpoint(config.storage_endpoint().clone())
        .build()
        .unwrap();
    let letters = dead_letters(&fake, &config, 20).await;
    // Every call now takes 4 s against that 10 s deadline: pulling the backlog to its end takes
    // longer than a lease unless the tool keeps its leases alive.
    let sub = config.subscription_path(&config.names().dlq_subscription);
    fake.set_response_delay(Duration::from_secs(4));
    let mut progress = Vec::new();
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        dlq::redrive_with(&config, &Filter::default(), false, |done, total| progress.push((done, total))),
    )
    .await
    .expect("the redrive comes to an end")
    .unwrap();
    fake.set_response_delay(Duration::ZERO);
    assert_eq!(report.redriven.len(), 20, "{report:?}");
    assert!(progress.last().is_some_and(|&(done, _)| done == 20), "progress was reported: {progress:?}");
    let raw = config.subscription_path(&config.names().raw_subscription);
    let got = receive(&config, &raw, 40, Duration::from_secs(10)).await;
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    for m in &got {
        *per_event.entry(attr(m, "event_id")).or_default() += 1;
    }
    assert_eq!(per_event.len(), letters.len(), "every dead letter is back on events.raw");
    assert!(per_event.values().all(|&n| n == 1), "none was re-published twice: {per_event:?}");
    assert_eq!(fake.backlog(&sub), 0, "each was acked after its publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_dry_run_publishes_and_acks_nothing() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "dryrun").await;
    dead_letters(&fake, &config, 3).await;
    let report = dlq::redrive_with(&config, &Filter::default(), true, |_, _| {}).await.unwrap();
    assert_eq!(report.redriven.len(), 3, "the dry run says what it would redrive");
    assert!(report.redriven.iter().all(|(_, new_id)| new_id.is_empty()), "and publishes none: {report:?}");
    assert_eq!(fake.backlog(&config.subscription_path(&config.names().dlq_subscription)), 3);
    assert_eq!(fake.backlog(&config.subscription_path(&config.names().raw_subscription)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_refuses_the_workers_subscription_unless_forced() {
    let config = emulator_config("peek").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let run = |args: &[&str]| cli(&config, args);
    let raw = config.names().raw_subscription.clone();
    let out = run(&["peek", &raw]);
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("delivery attempt") && stderr.contains("--force"), "{stderr}");
    let out = run(&["peek", &raw, "--force", "--max", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn dead_letters_are_kept_for_31_days() {
    let config = emulator_config("retention").build().unwrap();
    let options = suitex_events::worker::provision::ProvisionOptions::default();
    let wanted = suitex_events::worker::provision::wanted_subscriptions(&config, &options);
    let dlq =
        wanted.iter().find(|s| s.name == config.subscription_path(&config.names().dlq_subscription)).unwrap();
    let retention = dlq.message_retention_duration.as_ref().expect("a retention is set");
    assert_eq!(retention.seconds(), 31 * 24 * 3600, "Pub/Sub's maximum, as terraform/ has it");
    // The emulator accepts no more than 7 days: provision creates the subscription and says so.
    let steps = suitex_events::worker::provision::provision(&config, &options).await.unwrap();
    let step = steps.iter().find(|s| s.name == dlq.name).unwrap();
    assert!(
        matches!(&step.status, suitex_events::worker::provision::Status::CreatedCapped(why) if why.contains("31")),
        "{:?}",
        step.status
    );
}

/// `provision --ack-deadline`: every subscription it creates has that deadline (a test that kills
/// a worker waits that long for the leases it held); out of Pub/Sub's range it is refused by
/// name, before anything is created.
#[tokio::test]
async fn provision_sets_the_ack_deadline_asked_for_and_refuses_one_out_of_range() {
    let config = emulator_config("ackdeadline").build().unwrap();
    let run = |args: &[&str]| cli(&config, &[&["provision"], args].concat());
    let out = run(&["--without-ordering", "--ack-deadline", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ack-deadline") && stderr.contains("10..=600"), "{stderr}");

    let out = run(&["--without-ordering", "--ack-deadline", "10"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 s ack deadline (production: 60 s)"));
    let admin = suitex_events::clients::subscription_admin(&config).await.unwrap();
    let names = config.names();
    for name in [&names.raw_subscription, &names.dlq_subscription] {
        let sub =
            admin.get_subscription().set_subscription(config.subscription_path(name)).send().await.unwrap();
        assert_eq!(sub.ack_deadline_seconds, 10, "{name}");
    }
    // Provisioning again with another deadline changes nothing, and says so for each subscription.
    let out = run(&["--without-ordering"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [&names.raw_subscription, &names.dlq_subscription] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(name.as_str()) && l.contains("ack deadline is 10 s (wanted 60 s)")),
            "{name}: {stderr}"
        );
    }

    // The library refuses the same, naming the option and the range.
    let options = suitex_events::worker::provision::ProvisionOptions {
        ack_deadline_seconds: 601,
        ..Default::default()
    };
    let e = suitex_events::worker::provision::provision(&config, &options).await.unwrap_err();
    assert!(e.to_string().contains("ack_deadline_seconds") && e.to_string().contains("10 to 600"), "{e}");
}
