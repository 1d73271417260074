//! Spool mode against direct mode, from PHP (a bench binary, not a test).
//!
//! In one run, on one Pub/Sub emulator:
//!
//! 1. Latency of one `emit_event()` call, p50/p99 over S sequential calls after warm-up, with
//!    Pub/Sub behind a relay that adds 20 ms to every request (a slow or distant Pub/Sub):
//!    direct mode waits for it; spool mode appends to the local spool and returns.
//!    Target: spool p99 ≤ 2 ms, whatever the added latency.
//! 2. Throughput of 8 concurrent PHP processes, each making N sequential `emit_event()` calls
//!    (the web tier's shape: one event per request), in spool mode and in direct mode *without*
//!    added latency. Target: spool ≥ 0.5× direct.
//!
//! ```sh
//! scripts/bench-spool                     # fresh emulator, release extension, then this
//! cargo bench -p suitex_events --bench spool -- --single 1000 --events 2000 --processes 8
//! ```
//!
//! The spool lives in a fresh directory under the system's temporary directory (on this
//! machine's disk; put `TMPDIR` elsewhere to measure another disk): its appends are `fsync`ed.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use suitex_test_support::bench::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Spool vs direct benchmark (see the file's docs).
#[derive(clap::Parser)]
struct Args {
    /// Sequential single emits for the latency figures.
    #[arg(long, default_value_t = 500)]
    single: usize,
    /// Emits per process for the throughput figures.
    #[arg(long, default_value_t = 2_000)]
    events: usize,
    /// Concurrent PHP processes for the throughput figures.
    #[arg(long, default_value_t = 8)]
    processes: usize,
    /// Latency the relay adds to every request towards Pub/Sub, in milliseconds.
    #[arg(long, default_value_t = 20)]
    added_ms: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A TCP relay to `target` that holds every chunk the client sends for `delay` before passing it
/// on: each request (a gRPC call's frames) reaches Pub/Sub `delay` later.
async fn slow_relay(target: String, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                let (mut ci, mut co) = inbound.into_split();
                let (mut si, mut so) = outbound.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = ci.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if so.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = so.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut si, &mut co).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr.to_string()
}

/// The PHP side (`emit.php`) with the release extension, towards `pubsub`, in spool mode when
/// `spool` is given.
fn php(pubsub: &str, topic: &str, spool: Option<&Path>, args: &[String]) -> Command {
    let ext = std::env::var_os("SUITEX_EVENTS_PHP_EXT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/release/libsuitex_events_php.so"));
    assert!(
        ext.exists(),
        "{} does not exist (set SUITEX_EVENTS_PHP_EXT, or run scripts/bench-spool)",
        ext.display()
    );
    let mut cmd = Command::new("php");
    cmd.args(["-n", "-d"])
        .arg(format!("extension={}", ext.display()))
        .arg(workspace().join("php-ext/benches/emit.php"))
        .args(args)
        .env("PUBSUB_EMULATOR_HOST", pubsub)
        .env("SUITEX_EVENTS_PROJECT", PROJECT)
        .env("SUITEX_EVENTS_RAW_TOPIC", topic)
        .env("SUITEX_EVENTS_PUBLISH_DEADLINE", "120s");
    if let Some(dir) = spool {
        cmd.env("SUITEX_EVENTS_SPOOL", dir).env("SUITEX_EVENTS_SPOOL_MAX_BYTES", "8GiB");
    }
    cmd
}

fn json(mut cmd: Command) -> Value {
    json_output("php", cmd.output().expect("running php"))
}

fn spool_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("suitex-bench-spool-{tag}-{}", suitex_test_support::unique()))
}

/// Events per second of `processes` concurrent PHP processes, `events` emits each.
fn throughput(a: &Args, pubsub: &str, topic: &str, spool: Option<&Path>) -> f64 {
    let started = std::time::Instant::now();
    let children: Vec<_> = (0..a.processes)
        .map(|_| {
            let mut cmd = php(pubsub, topic, spool, &["many".into(), a.events.to_string(), "1000".into()]);
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            cmd.spawn().expect("running php")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "php: {}", String::from_utf8_lossy(&out.stderr));
    }
    (a.processes * (a.events + 1)) as f64 / started.elapsed().as_secs_f64()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets target" } else { "BELOW TARGET" }
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    let emulator = pubsub_emulator();
    let slow = slow_relay(emulator.clone(), Duration::from_millis(a.added_ms)).await;
    println!(
        "spool vs direct from PHP: {} single emits; {} processes × {} emits; Pub/Sub behind a relay adding {} ms per request",
        a.single, a.processes, a.events, a.added_ms
    );

    let single = |pubsub: &str, topic: &str, spool: Option<&Path>| {
        let v = json(php(pubsub, topic, spool, &["single".into(), a.single.to_string(), "100".into()]));
        (v["p50_us"].as_f64().unwrap() / 1e3, v["p99_us"].as_f64().unwrap() / 1e3)
    };
    // The PHP processes block this thread; the relay runs on the runtime's other threads.
    let topic = fresh_topic("spool-direct").await;
    let direct = tokio::task::block_in_place(|| single(&slow, &topic, None));
    let dir = spool_dir("single");
    let topic = fresh_topic("spool-single").await;
    let spooled = tokio::task::block_in_place(|| single(&slow, &topic, Some(&dir)));
    let _ = std::fs::remove_dir_all(&dir);

    println!("\nsingle emit_event() latency, Pub/Sub {} ms further away", a.added_ms);
    println!("  direct mode   p50 {:>8.2} ms   p99 {:>8.2} ms", direct.0, direct.1);
    println!("  spool mode    p50 {:>8.2} ms   p99 {:>8.2} ms", spooled.0, spooled.1);
    println!(
        "  spool p99 = {:.2} ms (target ≤ 2 ms: {}); direct p50 / spool p50 = {:.0}×",
        spooled.1,
        verdict(spooled.1 <= 2.0),
        direct.0 / spooled.0
    );

    let topic = fresh_topic("tput-direct").await;
    let direct_rate = tokio::task::block_in_place(|| throughput(&a, &emulator, &topic, None));
    let dir = spool_dir("tput");
    let topic = fresh_topic("tput-spool").await;
    let spool_rate = tokio::task::block_in_place(|| throughput(&a, &slow, &topic, Some(&dir)));
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nthroughput of {} concurrent PHP processes, one event per emit_event() call", a.processes);
    println!("  direct mode (no added latency)   {direct_rate:>9.0} ev/s");
    println!("  spool mode                       {spool_rate:>9.0} ev/s");
    let ratio = spool_rate / direct_rate;
    println!("  spool / direct = {ratio:.2}×   (target ≥ 0.5×: {})", verdict(ratio >= 0.5));
}
