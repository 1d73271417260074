//! Emit-path benchmark against the Pub/Sub emulator (a bench binary, not a test).
//!
//! 1. Throughput: the same N ordered 1 KiB events over K ordering keys published by (a) the SDK
//!    emitter (`emit_batch`) and (b) a bare `google-cloud-pubsub` `Publisher` given the same
//!    events serialized to the same wire JSON, key and attributes as it publishes them;
//!    alternating, each round on a fresh topic; prints the median rates and their ratio (target
//!    ≥ 0.9). A third figure, the bare publisher with messages built before the clock starts,
//!    shows the cost of serialization itself.
//! 2. Memory: resident set size after 1,000 and after 200,000 distinct ordering keys, for the
//!    emitter and for the bare publisher, each in a fresh child process (target for the
//!    emitter: ≤ 1.5× growth).
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

struct Args {
    events: usize,
    keys: usize,
    rounds: usize,
    memory_keys: usize,
    child: Option<(String, usize)>,
}

fn args() -> Args {
    let mut a = Args { events: 20_000, keys: 1_000, rounds: 3, memory_keys: 200_000, child: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--events" => a.events = num(),
            "--keys" => a.keys = num(),
            "--rounds" => a.rounds = num(),
            "--memory-keys" => a.memory_keys = num(),
            "--memory-child" => {
                let which = it.next().expect("sdk|bare");
                let keys = it.next().and_then(|v| v.parse().ok()).expect("key count");
                a.child = Some((which, keys));
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
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

async fn bare_publisher(topic: &str) -> Publisher {
    Publisher::builder(format!("projects/suitex-local/topics/{topic}"))
        .with_endpoint(format!("http://{}", pubsub_emulator()))
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
}

/// The bare client publishing pre-built messages (serialization done before the clock starts).
async fn run_bare_prebuilt(msgs: Vec<Message>) -> f64 {
    let publisher = bare_publisher(&fresh_topic("bare").await).await;
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
async fn run_bare(events: &[Event]) -> f64 {
    let publisher = bare_publisher(&fresh_topic("bare").await).await;
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
    let results = emitter.emit_batch(events).await.expect("batch accepted");
    assert!(results.iter().all(|r| r.is_ok()), "every event published");
    n as f64 / started.elapsed().as_secs_f64()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
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
                let results = emitter.emit_batch(batch).await.unwrap();
                assert!(results.iter().all(|r| r.is_ok()));
                if start == 0 {
                    after_first = rss_mib();
                }
            }
        }
        "bare" => {
            let publisher = bare_publisher(&topic).await;
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

#[tokio::main]
async fn main() {
    let a = args();
    if let Some((which, keys)) = &a.child {
        memory_child(which, *keys).await;
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
    let (mut sdk, mut bare, mut prebuilt) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up round (connection set-up, JIT in the emulator), not counted.
    let warm = &batch[..a.events.min(2_000)];
    run_bare(warm).await;
    run_sdk(warm.to_vec()).await;
    for round in 0..a.rounds {
        let b = run_bare(&batch).await;
        let s = run_sdk(batch.clone()).await;
        let p = run_bare_prebuilt(messages(&batch)).await;
        println!(
            "  round {}: sdk {s:>7.0} events/s   bare {b:>7.0} msg/s   bare, pre-built {p:>7.0} msg/s",
            round + 1
        );
        bare.push(b);
        sdk.push(s);
        prebuilt.push(p);
    }
    let (s, b, p) = (median(sdk), median(bare), median(prebuilt));
    println!("throughput (median of {} rounds):", a.rounds);
    println!("  sdk emitter (validate, size check, serialize, publish): {s:>7.0} events/s");
    println!("  bare publisher (serialize, publish):                     {b:>7.0} msg/s");
    println!("  bare publisher (pre-built messages, publish only):       {p:>7.0} msg/s");
    println!("  ratio sdk/bare = {:.2} (target >= 0.90); sdk/pre-built = {:.2}", s / b, s / p);

    println!(
        "memory: RSS after 1,000 and after {} distinct ordering keys (fresh process each)",
        a.memory_keys
    );
    let (s1, s2) = memory_in_child("sdk", a.memory_keys);
    let (b1, b2) = memory_in_child("bare", a.memory_keys);
    println!("  sdk emitter:    {s1:>8.1} MiB -> {s2:>8.1} MiB   growth {:.2}x (target <= 1.5x)", s2 / s1);
    println!("  bare publisher: {b1:>8.1} MiB -> {b2:>8.1} MiB   growth {:.2}x", b2 / b1);
}
