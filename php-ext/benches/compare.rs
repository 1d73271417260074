//! PHP extension benchmark against the Pub/Sub emulator (a bench binary, not a test).
//!
//! In one run, on one emulator, each measurement on a fresh topic:
//!
//! 1. Throughput of N ordered 1 KiB events over K ordering keys, in batches of C (a batch of
//!    C events over K keys waits for every key it touches, so small batches over many keys are
//!    bounded by round trips, not by the SDK):
//!    the Rust SDK (`Emitter::emit_batch`), PHP through the extension (`emit_events()` in a CLI
//!    loop), and the official Python publisher (`google-cloud-pubsub`, message ordering on)
//!    publishing the same messages, all at once. The three take turns for `rounds` rounds
//!    (medians), after an unmeasured warm-up of the emulator. Targets: PHP ≥ 0.8× Rust,
//!    PHP ≥ 20× Python.
//! 2. Latency of one synchronous emit (`emit_event()` from PHP, `Emitter::emit` from Rust),
//!    p50/p99 over S sequential calls after warm-up. Target: PHP p50 ≤ 1.5× Rust's.
//! 3. The PHP boundary's overhead: per single call (PHP p50 − Rust p50) and per event of a
//!    batch ((PHP − Rust time) / N).
//!
//! ```sh
//! scripts/bench-php                       # fresh emulator, release builds, Python venv, this
//! cargo bench -p suitex_events --bench compare -- --events 20000 --keys 1000 --chunk 5000 \
//!     --single 300 --rounds 5             # with the emulator and the release extension ready
//! ```
//!
//! The extension is `SUITEX_EVENTS_PHP_EXT` (default `target/release/libsuitex_events_php.so`);
//! the Python is `SUITEX_BENCH_PYTHON` (default `.services/bench-venv/bin/python`, which
//! `scripts/bench-php` creates with google-cloud-pubsub installed).

use sdk::{Emitter, Event};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;
use suitex_test_support::bench::*;

/// PHP vs Rust vs Python emit benchmark (see the file's docs).
#[derive(clap::Parser)]
struct Args {
    /// Events per round.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Distinct ordering keys.
    #[arg(long, default_value_t = 1_000)]
    keys: usize,
    /// Events per emit_events() call.
    #[arg(long, default_value_t = 5_000)]
    chunk: usize,
    /// Single emits for the latency figure.
    #[arg(long, default_value_t = 300)]
    single: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn env_or(name: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(name).map(PathBuf::from).unwrap_or(default);
    assert!(path.exists(), "{} does not exist (set {name}, or run scripts/bench-php)", path.display());
    path
}

async fn rust_batch(a: &Args) -> f64 {
    let emitter = Emitter::connect(config(&fresh_topic("rust").await)).await.unwrap();
    let batches: Vec<Vec<Event>> = (0..a.events)
        .step_by(a.chunk)
        .map(|s| one_kib_events(s..(s + a.chunk).min(a.events), a.keys, 0))
        .collect();
    // Connected and warm before the clock starts, as the PHP side is.
    emitter.emit_event(one_kib_events(0..1, a.keys, 0).remove(0)).await.unwrap();
    let started = Instant::now();
    for batch in batches {
        let results = emitter.emit_events(batch).await.expect("batch accepted");
        assert!(results.iter().all(|r| r.is_ok()), "every event published");
    }
    started.elapsed().as_secs_f64()
}

struct Latency {
    p50_us: f64,
    p99_us: f64,
}

async fn rust_single(a: &Args) -> Latency {
    let emitter = Emitter::connect(config(&fresh_topic("rust1").await)).await.unwrap();
    for e in one_kib_events(0..20, a.keys, 0) {
        emitter.emit_event(e).await.unwrap();
    }
    let mut us = Vec::with_capacity(a.single);
    for e in one_kib_events(0..a.single, a.keys, 0) {
        let t = Instant::now();
        emitter.emit_event(e).await.unwrap();
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(|x, y| x.partial_cmp(y).unwrap());
    Latency { p50_us: us[us.len() / 2], p99_us: us[(us.len() * 99 / 100).min(us.len() - 1)] }
}

/// Runs the PHP script with the extension loaded, publishing to `topic`.
fn php(topic: &str, script_args: &[String]) -> Value {
    let ext = env_or("SUITEX_EVENTS_PHP_EXT", workspace().join("target/release/libsuitex_events_php.so"));
    let out = Command::new("php")
        .args(["-n", "-d"])
        .arg(format!("extension={}", ext.display()))
        .arg(workspace().join("php-ext/benches/emit.php"))
        .args(script_args)
        .env("SUITEX_EVENTS_PROJECT", PROJECT)
        .env("SUITEX_EVENTS_RAW_TOPIC", topic)
        .env("SUITEX_EVENTS_PUBLISH_DEADLINE", "120s")
        .output()
        .expect("running php");
    json_output("php", out)
}

fn python(topic: &str, a: &Args) -> f64 {
    let py = env_or("SUITEX_BENCH_PYTHON", workspace().join(".services/bench-venv/bin/python"));
    let out = Command::new(py)
        .arg(workspace().join("php-ext/benches/python_publish.py"))
        .args([PROJECT, topic, &a.events.to_string(), &a.keys.to_string()])
        .output()
        .expect("running python");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    v["seconds"].as_f64().unwrap()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets target" } else { "BELOW TARGET" }
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    let n = a.events as f64;
    println!(
        "PHP extension benchmark: {} ordered 1 KiB events over {} keys, batches of {}; {} single emits; {} rounds",
        a.events, a.keys, a.chunk, a.single, a.rounds
    );

    // The emulator is a JVM: a fresh one gets faster over its first ~100,000 messages. Warm it
    // up unmeasured; the ratios below also pair each round's figures (same emulator state).
    for _ in 0..4 {
        let warm = rust_batch(&a).await;
        println!("  warm-up: Rust {:>8.0} ev/s (not counted)", n / warm);
    }

    let (mut rust_s, mut php_s, mut python_s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut vs_rust, mut vs_python) = (Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        let r = rust_batch(&a).await;
        let topic = fresh_topic("php").await;
        let p = php(&topic, &["batch".into(), a.events.to_string(), a.keys.to_string(), a.chunk.to_string()])
            ["seconds"]
            .as_f64()
            .unwrap();
        let py = python(&fresh_topic("python").await, &a);
        println!(
            "  round {round}: Rust {:>8.0} ev/s   PHP {:>8.0} ev/s   Python {:>8.0} ev/s",
            n / r,
            n / p,
            n / py
        );
        rust_s.push(r);
        php_s.push(p);
        python_s.push(py);
        vs_rust.push(r / p);
        vs_python.push(py / p);
    }
    let (rust_s, php_s, python_s) = (median(rust_s), median(php_s), median(python_s));

    let (rust_rate, php_rate, python_rate) = (n / rust_s, n / php_s, n / python_s);
    println!("\nthroughput (medians of {} rounds)", a.rounds);
    println!("  Rust SDK emit_batch          {rust_rate:>9.0} ev/s");
    println!("  PHP emit_events()            {php_rate:>9.0} ev/s");
    println!("  Python google-cloud-pubsub   {python_rate:>9.0} ev/s");
    let (vs_rust, vs_python) = (median(vs_rust), median(vs_python));
    println!(
        "  PHP / Rust   = {vs_rust:.2}×   (median of the rounds' ratios; target ≥ 0.8×: {})",
        verdict(vs_rust >= 0.8)
    );
    println!(
        "  PHP / Python = {vs_python:.1}×   (median of the rounds' ratios; target ≥ 20×: {})",
        verdict(vs_python >= 20.0)
    );

    let rust1 = rust_single(&a).await;
    let topic = fresh_topic("php1").await;
    let php1 = php(&topic, &["single".into(), a.single.to_string(), a.keys.to_string()]);
    let (php_p50, php_p99) = (php1["p50_us"].as_f64().unwrap(), php1["p99_us"].as_f64().unwrap());
    let p50_ratio = php_p50 / rust1.p50_us;
    println!("\nsingle synchronous emit ({} calls after 20 warm-up)", a.single);
    println!("  Rust Emitter::emit   p50 {:>8.0} µs   p99 {:>8.0} µs", rust1.p50_us, rust1.p99_us);
    println!("  PHP emit_event()     p50 {php_p50:>8.0} µs   p99 {php_p99:>8.0} µs");
    println!("  PHP / Rust p50 = {p50_ratio:.2}×   (target ≤ 1.5×: {})", verdict(p50_ratio <= 1.5));

    println!("\nPHP boundary overhead");
    println!("  per single call (p50 difference)   {:>8.1} µs", php_p50 - rust1.p50_us);
    println!("  per event in a batch               {:>8.1} µs", (php_s - rust_s) / n * 1e6);
}
