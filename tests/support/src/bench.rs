//! What the benchmarks (`sdk/benches`, `php-ext/benches`) share: a raw topic of their own on the
//! Pub/Sub emulator, the 1 KiB events they all emit, and the statistics they print.

use serde_json::json;
use std::time::Duration;
use suitex_events::Event;
use suitex_events::config::{Config, Names};

/// The project the benchmarks use on the emulators.
pub const PROJECT: &str = "suitex-local";

/// The repository's root (the benchmarks find scripts and built artifacts from it).
pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// The one JSON value a benchmark's helper process (`what`) printed; panics with its output if it
/// failed.
pub fn json_output(what: &str, out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what} printed no JSON: {e}"))
}

/// The Pub/Sub emulator's `host:port` (`PUBSUB_EMULATOR_HOST`).
pub fn pubsub_emulator() -> String {
    crate::required_env("PUBSUB_EMULATOR_HOST")
}

/// A configuration that emits to `topic` on the emulator, with a deadline long enough for the
/// largest batch a benchmark sends. No benchmark event is offloaded, so the storage emulator is
/// optional.
pub fn config(topic: &str) -> Config {
    let pubsub = pubsub_emulator();
    let storage = std::env::var("STORAGE_EMULATOR_HOST").unwrap_or_else(|_| pubsub.clone());
    Config::builder(PROJECT)
        .emulators(&pubsub, &storage)
        .names(Names { raw_topic: topic.to_string(), ..Names::default() })
        .publish_deadline(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Creates a new raw topic on the emulator (no subscription: nothing is retained) and returns
/// its name.
pub async fn fresh_topic(tag: &str) -> String {
    let name = format!("bench-{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let c = config(&name);
    let admin = suitex_events::clients::topic_admin(&c).await.unwrap();
    admin.create_topic().set_name(c.raw_topic_path()).send().await.expect("create topic");
    name
}

/// Events `seqs` with 1 KiB bodies over `keys` aggregates of account 7 (`C-{key_offset + seq %
/// keys}`) — the same events `php-ext/benches/emit.php` builds.
pub fn one_kib_events(seqs: std::ops::Range<usize>, keys: usize, key_offset: usize) -> Vec<Event> {
    let filler = "x".repeat(1024 - 40);
    seqs.map(|i| {
        Event::builder()
            .account_id(7)
            .aggregate("customer", format!("C-{}", key_offset + i % keys))
            .event_type("customer.updated")
            .payload(json!({"seq": i, "filler": filler}))
            .build()
            .unwrap()
    })
    .collect()
}

/// The median of `v` (the upper one for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The `p` quantile (0.0–1.0) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
