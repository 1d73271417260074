//! Local/dev topology on the emulators: topics, subscriptions and the claim-check bucket.
//!
//! Production topology is Terraform's job (`terraform/`); this module refuses to run against
//! real Google endpoints. It is idempotent: what exists is left alone and reported, with a
//! warning when its settings differ from what production uses.

use crate::config::{Config, Endpoint};
use crate::error::{ConfigError, Error, Result, Service};
use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::model::{DeadLetterPolicy, ExpirationPolicy, RetryPolicy, Subscription};
use serde::Serialize;
use std::time::Duration;

/// Delivery attempts before a message on `events.raw-sub` is dead-lettered.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 5;
/// Ack deadline of the subscriptions, seconds, as in production.
pub const ACK_DEADLINE_SECONDS: i32 = 60;
/// The ack deadlines Pub/Sub accepts, seconds.
pub const ACK_DEADLINE_RANGE: std::ops::RangeInclusive<i32> = 10..=600;
/// Redelivery backoff of `events.raw-sub` (Pub/Sub's retry policy), as in production.
pub const RETRY_MIN_BACKOFF: Duration = Duration::from_secs(10);
/// See [`RETRY_MIN_BACKOFF`].
pub const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long the dead-letter subscription keeps unacked messages: 31 days, the Pub/Sub maximum,
/// so nothing dead-lettered is lost before someone looks.
pub const DLQ_RETENTION: Duration = Duration::from_secs(31 * 24 * 3600);
/// Days after which the bucket deletes claim-check objects.
pub const PAYLOAD_RETENTION_DAYS: u32 = 30;

/// What to create. [`ProvisionOptions::default`] is what production has.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Create `events.raw-sub` without message ordering. The official emulator crashes on a
    /// subscription with ordering AND a dead-letter policy; production keeps ordering on.
    pub without_ordering: bool,
    /// Create `events.raw-sub` without a dead-letter policy. Only for tests of ordering on the
    /// official emulator (see above); never what production has.
    pub without_dead_lettering: bool,
    /// Redelivery backoff of `events.raw-sub` after a nack: `(minimum, maximum)`, or `None`
    /// for immediate redelivery. Default: 10 s to 600 s, as in production.
    pub retry_backoff: Option<(Duration, Duration)>,
    /// Extra subscriptions on `events.merged` (downstream consumers, the demo's viewer).
    pub merged_subscriptions: Vec<String>,
    /// Ack deadline of every subscription created, seconds ([`ACK_DEADLINE_RANGE`]). Default
    /// [`ACK_DEADLINE_SECONDS`], as in production; a test that kills a worker can wait less for
    /// the leases it held to run out.
    pub ack_deadline_seconds: i32,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        ProvisionOptions {
            without_ordering: false,
            without_dead_lettering: false,
            retry_backoff: Some((RETRY_MIN_BACKOFF, RETRY_MAX_BACKOFF)),
            merged_subscriptions: Vec::new(),
            ack_deadline_seconds: ACK_DEADLINE_SECONDS,
        }
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It was created.
    Created,
    /// It already existed with the wanted settings.
    Exists,
    /// It already existed with other settings (left alone; the text says what differs).
    ExistsDiffering(String),
    /// It was created with less than production has, because the emulator allows no more
    /// (the text says what).
    CreatedCapped(String),
}

/// One line of the provisioning report.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `topic`, `subscription` or `bucket`.
    pub kind: &'static str,
    /// Its full name.
    pub name: String,
    /// What happened.
    pub status: Status,
}

/// Warnings a caller must show (the emulator compromise).
pub fn warnings(options: &ProvisionOptions, config: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if options.without_dead_lettering {
        w.push(format!(
            "warning: {} is created WITHOUT a dead-letter policy (test topology only).",
            config.names().raw_subscription
        ));
    }
    if options.ack_deadline_seconds != ACK_DEADLINE_SECONDS {
        w.push(format!(
            "warning: the subscriptions are created with a {} s ack deadline (production: {ACK_DEADLINE_SECONDS} s).",
            options.ack_deadline_seconds
        ));
    }
    if options.without_ordering {
        w.push(format!(
            "warning: {} is created WITHOUT message ordering: the Pub/Sub emulator crashes on a \
             subscription with both ordering and a dead-letter policy. Production (terraform/) \
             keeps ordering on; the ordered dead-letter path is tested with the in-repo Pub/Sub fake.",
            config.names().raw_subscription
        ));
    }
    w
}

fn already_exists(e: &google_cloud_gax::error::Error) -> bool {
    e.http_status_code() == Some(409) || e.status().map(|s| s.code) == Some(Code::AlreadyExists)
}

fn failed(operation: String, e: google_cloud_gax::error::Error) -> Error {
    Error::google(Service::PubSub, operation, e)
}

/// Creates the topology on the emulators named by `config`.
pub async fn provision(config: &Config, options: &ProvisionOptions) -> Result<Vec<Step>> {
    let (Endpoint::Emulator(_), Endpoint::Emulator(storage_url)) =
        (config.pubsub_endpoint(), config.storage_endpoint())
    else {
        return Err(ConfigError::new(
            "PUBSUB_EMULATOR_HOST / STORAGE_EMULATOR_HOST",
            "must both be set: provision only builds local/dev topology on the emulators; \
             production topology is managed by terraform/",
        )
        .into());
    };
    if !ACK_DEADLINE_RANGE.contains(&options.ack_deadline_seconds) {
        return Err(ConfigError::new(
            "ack_deadline_seconds",
            format!(
                "is {} s; Pub/Sub accepts {} to {} s",
                options.ack_deadline_seconds,
                ACK_DEADLINE_RANGE.start(),
                ACK_DEADLINE_RANGE.end()
            ),
        )
        .into());
    }
    let names = config.names();
    let topics = crate::clients::topic_admin(config).await?;
    let subs = crate::clients::subscription_admin(config).await?;
    let mut steps = Vec::new();

    for topic in [&names.raw_topic, &names.merged_topic, &names.dlq_topic] {
        let path = config.topic_path(topic);
        let status = match topics.create_topic().set_name(&path).send().await {
            Ok(_) => Status::Created,
            Err(e) if already_exists(&e) => Status::Exists,
            Err(e) => return Err(failed(format!("creating topic {path}"), e)),
        };
        steps.push(Step { kind: "topic", name: path, status });
    }

    let wanted = wanted_subscriptions(config, options);
    for want in wanted {
        let name = want.name.clone();
        let status = match subs.create_subscription().with_request(want.clone()).send().await {
            Ok(_) => Status::Created,
            // The emulator keeps messages at most 7 days; the real service, 31 (terraform/).
            Err(e) if retention_out_of_bounds(&e) => {
                let capped =
                    want.clone().set_message_retention_duration(wkt_duration(EMULATOR_MAX_RETENTION));
                match subs.create_subscription().with_request(capped).send().await {
                    Ok(_) => Status::CreatedCapped(format!(
                        "the emulator keeps messages at most {} days, not {} (production keeps {})",
                        EMULATOR_MAX_RETENTION.as_secs() / 86_400,
                        DLQ_RETENTION.as_secs() / 86_400,
                        DLQ_RETENTION.as_secs() / 86_400,
                    )),
                    Err(e) if already_exists(&e) => Status::Exists,
                    Err(e) => return Err(failed(format!("creating subscription {name}"), e)),
                }
            }
            Err(e) if already_exists(&e) => {
                let have = subs
                    .get_subscription()
                    .set_subscription(&name)
                    .send()
                    .await
                    .map_err(|e| failed(format!("reading subscription {name}"), e))?;
                match differences(&want, &have) {
                    d if d.is_empty() => Status::Exists,
                    d => Status::ExistsDiffering(d.join("; ")),
                }
            }
            Err(e) => return Err(failed(format!("creating subscription {name}"), e)),
        };
        steps.push(Step { kind: "subscription", name, status });
    }

    let status = create_bucket(storage_url, config).await?;
    steps.push(Step { kind: "bucket", name: format!("gs://{}", names.payload_bucket), status });
    if let Some(digests) = crate::worker::WorkerOptions::from_env()?.feeder.digests {
        let status = create_digest_bucket(storage_url, config, &digests.bucket).await?;
        steps.push(Step { kind: "bucket", name: format!("gs://{}", digests.bucket), status });
    }
    Ok(steps)
}

/// The subscriptions `provision` creates, as production has them (terraform/ makes the same).
pub fn wanted_subscriptions(config: &Config, options: &ProvisionOptions) -> Vec<Subscription> {
    let names = config.names();
    let dlq_topic = config.topic_path(&names.dlq_topic);
    let mut raw_sub = Subscription::new()
        .set_name(config.subscription_path(&names.raw_subscription))
        .set_topic(config.topic_path(&names.raw_topic))
        .set_ack_deadline_seconds(options.ack_deadline_seconds)
        .set_enable_message_ordering(!options.without_ordering)
        .set_expiration_policy(ExpirationPolicy::new());
    if !options.without_dead_lettering {
        raw_sub = raw_sub.set_dead_letter_policy(
            DeadLetterPolicy::new()
                .set_dead_letter_topic(&dlq_topic)
                .set_max_delivery_attempts(MAX_DELIVERY_ATTEMPTS),
        );
    }
    if let Some((min, max)) = options.retry_backoff {
        raw_sub = raw_sub.set_retry_policy(
            RetryPolicy::new().set_minimum_backoff(wkt_duration(min)).set_maximum_backoff(wkt_duration(max)),
        );
    }
    let dlq_sub = Subscription::new()
        .set_name(config.subscription_path(&names.dlq_subscription))
        .set_topic(&dlq_topic)
        .set_ack_deadline_seconds(options.ack_deadline_seconds)
        .set_message_retention_duration(wkt_duration(DLQ_RETENTION))
        .set_expiration_policy(ExpirationPolicy::new());
    // The workers' dead-letter watch (worker::dlq_watch): it parks the key of a dead letter the
    // worker did not park itself, and acks it here only.
    let watch_sub = Subscription::new()
        .set_name(config.subscription_path(&names.dlq_watch_subscription()))
        .set_topic(dlq_topic)
        .set_ack_deadline_seconds(options.ack_deadline_seconds)
        .set_expiration_policy(ExpirationPolicy::new());
    let mut wanted = vec![raw_sub, dlq_sub, watch_sub];
    for name in &options.merged_subscriptions {
        wanted.push(
            Subscription::new()
                .set_name(config.subscription_path(name))
                .set_topic(config.topic_path(&names.merged_topic))
                .set_ack_deadline_seconds(options.ack_deadline_seconds)
                .set_enable_message_ordering(true)
                .set_expiration_policy(ExpirationPolicy::new()),
        );
    }
    wanted
}

/// The longest retention the Pub/Sub emulator accepts.
const EMULATOR_MAX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

fn retention_out_of_bounds(e: &google_cloud_gax::error::Error) -> bool {
    e.status().is_some_and(|s| s.code == Code::InvalidArgument && s.message.contains("retention"))
}

fn wkt_duration(d: Duration) -> google_cloud_wkt::Duration {
    google_cloud_wkt::Duration::clamp(d.as_secs() as i64, d.subsec_nanos() as i32)
}

fn differences(want: &Subscription, have: &Subscription) -> Vec<String> {
    let mut d = Vec::new();
    if want.topic != have.topic {
        d.push(format!("topic is {} (wanted {})", have.topic, want.topic));
    }
    if want.enable_message_ordering != have.enable_message_ordering {
        d.push(format!(
            "message ordering is {} (wanted {}); ordering cannot be changed on an existing subscription",
            on_off(have.enable_message_ordering),
            on_off(want.enable_message_ordering)
        ));
    }
    let dl = |s: &Subscription| {
        s.dead_letter_policy.as_ref().map(|p| (p.dead_letter_topic.clone(), p.max_delivery_attempts))
    };
    if dl(want) != dl(have) {
        d.push(format!("dead-letter policy is {:?} (wanted {:?})", dl(have), dl(want)));
    }
    if want.ack_deadline_seconds != have.ack_deadline_seconds {
        d.push(format!(
            "ack deadline is {} s (wanted {} s)",
            have.ack_deadline_seconds, want.ack_deadline_seconds
        ));
    }
    d
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Creates only the claim-check bucket on the storage emulator named by `config` (for a Pub/Sub
/// that is provisioned otherwise, e.g. the in-repo fake).
pub async fn provision_bucket(config: &Config) -> Result<Status> {
    let Endpoint::Emulator(storage_url) = config.storage_endpoint() else {
        return Err(ConfigError::new(
            "STORAGE_EMULATOR_HOST",
            "must be set: provision only builds local/dev topology on the emulators",
        )
        .into());
    };
    create_bucket(storage_url, config).await
}

/// fake-gcs-server has no gRPC v2 and the storage client has no bucket creation over JSON, so
/// the bucket is made with the JSON API directly.
async fn create_bucket(storage_url: &str, config: &Config) -> Result<Status> {
    let bucket = &config.names().payload_bucket;
    let body = serde_json::json!({
        "name": bucket,
        "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": true}, "publicAccessPrevention": "enforced"},
        "lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"age": PAYLOAD_RETENTION_DAYS}}]},
    });
    post_bucket(storage_url, config, bucket, body).await
}

/// The ledger's digest bucket on the storage emulator (in production: terraform's
/// `ledger_digests` module, with a locked retention policy the emulator does not model).
pub async fn create_digest_bucket(storage_url: &str, config: &Config, bucket: &str) -> Result<Status> {
    let body = serde_json::json!({
        "name": bucket,
        "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": true}, "publicAccessPrevention": "enforced"},
    });
    post_bucket(storage_url, config, bucket, body).await
}

async fn post_bucket(
    storage_url: &str,
    config: &Config,
    bucket: &str,
    body: serde_json::Value,
) -> Result<Status> {
    let op = || format!("creating bucket gs://{bucket}");
    let resp = reqwest::Client::new()
        .post(format!("{storage_url}/storage/v1/b"))
        .query(&[("project", config.project())])
        .json(&body)
        .send()
        .await
        .map_err(|e| Error::service(Service::Storage, op(), true, e))?;
    match resp.status().as_u16() {
        200..=299 => Ok(Status::Created),
        409 => Ok(Status::Exists),
        code => {
            let text = resp.text().await.unwrap_or_default();
            Err(Error::service(Service::Storage, op(), code >= 500, format!("HTTP {code}: {}", text.trim())))
        }
    }
}
