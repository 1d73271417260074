//! Emit-path benchmark against the Pub/Sub emulator (a bench binary, not a test).
//!
//! 1. Throughput: the same N ordered 1 KiB events over K ordering keys published by (a) the SDK
//!    emitter (`emit_events`), (b) a bare `google-cloud-pubsub` `Publisher` with the client's
//!    default batching (10 ms delay) and (c) the bare publisher *tuned* with the SDK's own
//!    batching settings (100 messages, 1 MB, no delay) — the fair anchor — each given the same
//!    events serialized to the same wire JSON, key and attributes as it publishes them; in turn,
//!    each round on a fresh topic; prints the median rates and both ratios (target ≥ 0.95× the
//!    tuned one). A fourth figure, the tuned publisher with messages built before the clock
//!    starts, shows the cost of serialization itself.
//! 2. Memory: resident set size after 1,000 and after 200,000 distinct ordering keys, for the
//!    emitter and for the bare publisher, each in a fresh child process (target for the
//!    emitter: ≤ 1.5× growth).
//!
//! 3. Tracing: the emitter's throughput in a fresh process with no `OTEL_*` settings (nothing
//!    installed: each span a disabled `tracing` span) and in one exporting every span with OTLP
//!    to a local endpoint that accepts and drops them; the ratio on/off, and off against the
//!    tuned bare publisher of the same run (compare that with an earlier commit's sdk/tuned).
//!
//! ```sh
//! scripts/services start && eval "$(scripts/services env)"
//! cargo bench -p suitex-events --bench emit            # defaults: N=20000 K=1000 rounds=3
//! cargo bench -p suitex-events --bench emit -- --events 50000 --keys 2000 --rounds 5
//! ```

use bytes::Bytes;
use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use std::time::Instant;
use suitex_events::{Emitter, Event};
use suitex_test_support::bench::*;

/// Emit-path benchmark (see the file's docs).
#[derive(clap::Parser)]
struct Args {
    /// Events per round.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Distinct ordering keys per round.
    #[arg(long, default_value_t = 1_000)]
    keys: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Distinct ordering keys for the memory figure.
    #[arg(long, default_value_t = 200_000)]
    memory_keys: usize,
    /// Internal: run the memory measurement of `sdk` or `bare` for this many keys.
    #[arg(long, num_args = 2, value_names = ["PUBLISHER", "KEYS"], hide = true)]
    memory_child: Option<Vec<String>>,
    /// Internal: run the tracing measurement with spans exported (`on`) or not (`off`).
    #[arg(long, value_name = "MODE", hide = true)]
    tracing_child: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The bare client's messages: the same 1 KiB bodies, keys and attributes the SDK sends.
fn messages(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .map(|e| {
            Message::new()
                .set_data(Bytes::from(e.to_wire_json()))
                .set_ordering_key(e.ordering_key())
                .set_attributes(e.attributes())
        })
        .collect()
}

/// Batching of a bare publisher.
#[derive(Clone, Copy)]
enum Batching {
    /// The client's defaults (100 messages, 1 MB, 10 ms delay).
    ClientDefaults,
    /// The SDK's own settings (100 messages, 1 MB, no delay): the fair anchor.
    Sdk,
}

async fn bare_publisher(topic: &str, batching: Batching) -> Publisher {
    let mut b = Publisher::builder(format!("projects/suitex-local/topics/{topic}"))
        .with_endpoint(format!("http://{}", pubsub_emulator()))
        .with_credentials(anonymous::Builder::new().build());
    if let Batching::Sdk = batching {
        let sdk = suitex_events::config::Batching::default();
        b = b
            .set_message_count_threshold(sdk.max_messages)
            .set_byte_threshold(sdk.max_bytes)
            .set_delay_threshold(sdk.max_delay);
    }
    b.build().await.unwrap()
}

/// The bare client publishing pre-built messages (serialization done before the clock starts).
async fn run_bare_prebuilt(msgs: Vec<Message>) -> f64 {
    let publisher = bare_publisher(&fresh_topic("bare").await, Batching::Sdk).await;
    let n = msgs.len();
    let started = Instant::now();
    let futures: Vec<_> = msgs.into_iter().map(|m| publisher.publish(m)).collect();
    for f in futures {
        f.await.expect("bare publish");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The bare client publishing the same events: each serialized to the same wire JSON, key and
/// attributes as it is published — the least any publisher of this envelope does.
async fn run_bare(events: &[Event], batching: Batching) -> f64 {
    let publisher = bare_publisher(&fresh_topic("bare").await, batching).await;
    let started = Instant::now();
    let futures: Vec<_> = events
        .iter()
        .map(|e| {
            publisher.publish(
                Message::new()
                    .set_data(Bytes::from(e.to_wire_json()))
                    .set_ordering_key(e.ordering_key())
                    .set_attributes(e.attributes()),
            )
        })
        .collect();
    for f in futures {
        f.await.expect("bare publish");
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

async fn run_sdk(events: Vec<Event>) -> f64 {
    let emitter = Emitter::connect(config(&fresh_topic("sdk").await)).await.unwrap();
    let n = events.len();
    let started = Instant::now();
    let results = emitter.emit_events(events).await.expect("batch accepted");
    assert!(results.iter().all(|r| r.is_ok()), "every event published");
    n as f64 / started.elapsed().as_secs_f64()
}

/// This process's resident memory, in MiB.
fn rss_mib() -> f64 {
    suitex_test_support::rss_mib(std::process::id()).expect("this process's /proc status")
}

/// In a child process: publish one event for each of `keys` distinct ordering keys, 1,000 per
/// call, and print the RSS after the first 1,000 keys and after all of them.
async fn memory_child(which: &str, keys: usize) {
    let topic = fresh_topic(&format!("mem-{which}")).await;
    let chunk = 1_000;
    let mut after_first = 0.0;
    match which {
        "sdk" => {
            let emitter = Emitter::connect(config(&topic)).await.unwrap();
            for start in (0..keys).step_by(chunk) {
                let batch = one_kib_events(0..chunk.min(keys - start), usize::MAX, start);
                let results = emitter.emit_events(batch).await.unwrap();
                assert!(results.iter().all(|r| r.is_ok()));
                if start == 0 {
                    after_first = rss_mib();
                }
            }
        }
        "bare" => {
            let publisher = bare_publisher(&topic, Batching::Sdk).await;
            for start in (0..keys).step_by(chunk) {
                let msgs = messages(&one_kib_events(0..chunk.min(keys - start), usize::MAX, start));
                let futures: Vec<_> = msgs.into_iter().map(|m| publisher.publish(m)).collect();
                for f in futures {
                    f.await.unwrap();
                }
                if start == 0 {
                    after_first = rss_mib();
                }
            }
        }
        other => panic!("unknown publisher {other}"),
    }
    println!("{after_first:.1} {:.1}", rss_mib());
}

fn memory_in_child(which: &str, keys: usize) -> (f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--memory-child", which, &keys.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// An OTLP/HTTP endpoint that answers every export with 200 and keeps nothing.
fn otlp_sink() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                let mut seen = Vec::new();
                loop {
                    // One request at a time per connection: headers, then Content-Length bytes.
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if seen.len() < end + 4 + length {
                            break;
                        }
                        seen.drain(..end + 4 + length);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// In a child process: the emitter's median throughput with spans exported (`on`) or with no
/// `OTEL_*` settings at all (`off`).
fn tracing_child(mode: &str, a: &Args) {
    let telemetry = match mode {
        "off" => None,
        "on" => {
            // SAFETY: set before any other thread of this process reads the environment.
            unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_sink()) };
            let t = suitex_events::telemetry::install_global("suitex-bench").unwrap();
            assert!(t.is_some(), "spans are exported");
            t
        }
        other => panic!("unknown tracing mode {other}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rates: Vec<f64> = runtime.block_on(async {
        let batch = one_kib_events(0..a.events, a.keys, 0);
        run_sdk(batch[..a.events.min(2_000)].to_vec()).await;
        let mut rates = Vec::new();
        for _ in 0..a.rounds {
            rates.push(run_sdk(batch.clone()).await);
        }
        rates
    });
    drop(runtime);
    drop(telemetry);
    println!("{:.1}", median(rates));
}

fn tracing_in_child(mode: &str, a: &Args) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--tracing-child", mode, "--events", &a.events.to_string(), "--keys", &a.keys.to_string()])
        .args(["--rounds", &a.rounds.to_string()])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_TRACES_EXPORTER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

fn main() {
    let a = <Args as clap::Parser>::parse();
    if let Some(mode) = &a.tracing_child {
        tracing_child(mode, &a);
        return;
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(bench(a));
}

async fn bench(a: Args) {
    if let Some(child) = &a.memory_child {
        memory_child(&child[0], child[1].parse().expect("a key count")).await;
        return;
    }
    println!(
        "emit benchmark: {} ordered 1 KiB events over {} keys, {} rounds, emulator {}",
        a.events,
        a.keys,
        a.rounds,
        pubsub_emulator()
    );
    let batch = one_kib_events(0..a.events, a.keys, 0);
    let (mut sdk, mut bare, mut tuned, mut prebuilt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm-up round (connection set-up, JIT in the emulator), not counted.
    let warm = &batch[..a.events.min(2_000)];
    run_bare(warm, Batching::Sdk).await;
    run_sdk(warm.to_vec()).await;
    for round in 0..a.rounds {
        let b = run_bare(&batch, Batching::ClientDefaults).await;
        let t = run_bare(&batch, Batching::Sdk).await;
        let s = run_sdk(batch.clone()).await;
        let p = run_bare_prebuilt(messages(&batch)).await;
        println!(
            "  round {}: sdk {s:>7.0} events/s   bare (defaults) {b:>7.0}   bare (tuned) {t:>7.0}   tuned, pre-built {p:>7.0} msg/s",
            round + 1
        );
        bare.push(b);
        tuned.push(t);
        sdk.push(s);
        prebuilt.push(p);
    }
    let (s, b, t, p) = (median(sdk), median(bare), median(tuned), median(prebuilt));
    println!("throughput (median of {} rounds):", a.rounds);
    println!("  sdk emitter (validate, size check, serialize, publish):       {s:>7.0} events/s");
    println!("  bare publisher, client defaults (10 ms delay; serialize):     {b:>7.0} msg/s");
    println!("  bare publisher, the SDK's batching (no delay; serialize):     {t:>7.0} msg/s");
    println!("  bare publisher, the SDK's batching, pre-built messages:       {p:>7.0} msg/s");
    println!(
        "  ratio sdk/tuned = {:.2} (target >= 0.95); sdk/defaults = {:.2}; sdk/pre-built = {:.2}",
        s / t,
        s / b,
        s / p
    );

    println!(
        "memory: RSS after 1,000 and after {} distinct ordering keys (fresh process each)",
        a.memory_keys
    );
    let (s1, s2) = memory_in_child("sdk", a.memory_keys);
    let (b1, b2) = memory_in_child("bare", a.memory_keys);
    println!("  sdk emitter:    {s1:>8.1} MiB -> {s2:>8.1} MiB   growth {:.2}x (target <= 1.5x)", s2 / s1);
    println!("  bare publisher: {b1:>8.1} MiB -> {b2:>8.1} MiB   growth {:.2}x", b2 / b1);

    println!("tracing: the emitter in a fresh process, median of {} rounds each", a.rounds);
    let off = tracing_in_child("off", &a);
    let on = tracing_in_child("on", &a);
    println!("  no OTEL_* settings (nothing installed):          {off:>7.0} events/s");
    println!("  every span exported with OTLP (a local sink):   {on:>7.0} events/s");
    println!(
        "  ratio on/off = {:.2}; off/tuned bare publisher = {:.2} (compare with sdk/tuned above and with an earlier commit's)",
        on / off,
        off / t
    );
}
