//! Spool mode and `suitex-events relay`, as processes on the emulators: emits that never wait on
//! Pub/Sub, a relay killed mid-drain, a Cloud Storage outage, a full spool, poison.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use suitex_events::Config;
use suitex_events::config::Endpoint;
use suitex_events::emit::spool::Entry;
use suitex_events::emit::{Spool, SpoolAccess};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

fn spool_dir() -> PathBuf {
    std::env::temp_dir().join(format!("suitex-spool-{}", unique()))
}

/// `config` in spool mode on `dir`, with Pub/Sub and Cloud Storage behind `pubsub` / `storage`.
fn spool_config(base: &Config, dir: &Path, pubsub: &Relay, storage: Option<&Relay>) -> Config {
    let mut b = Config::builder(base.project())
        .names(base.names().clone())
        .pubsub_endpoint(Endpoint::emulator(&format!("127.0.0.1:{}", pubsub.port())))
        .storage_endpoint(match storage {
            Some(s) => Endpoint::emulator(&format!("127.0.0.1:{}", s.port())),
            None => base.storage_endpoint().clone(),
        })
        .publish_deadline(Duration::from_secs(2))
        .spool(dir);
    b = b.spool_max_bytes(base.spool_max_bytes());
    b.build().unwrap()
}

fn command(config: &Config, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "suitex_events=info")
        .env("SUITEX_RELAY_METRICS_ADDR", "off")
        .envs(config.to_settings())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn emit(config: &Config, event: &Value) -> Output {
    let mut child = command(config, &["emit"]).stdin(Stdio::piped()).spawn().expect("run suitex-events emit");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn relay(config: &Config, args: &[&str]) -> Child {
    let mut all = vec!["relay"];
    all.extend_from_slice(args);
    command(config, &all)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run suitex-events relay")
}

/// `GET /metrics` of a relay.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the relay's metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    body
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn event(key: usize, seq: usize) -> Value {
    json!({"account_id": 42, "aggregate_type": "customer", "aggregate_id": format!("K-{key}"),
        "event_type": "customer.updated", "payload": {"key": key, "seq": seq}})
}

fn depth(config: &Config) -> u64 {
    Spool::open(config.spool().unwrap(), config.spool_max_bytes(), &SpoolAccess::of(config).unwrap())
        .unwrap()
        .status()
        .unwrap()
        .depth
}

/// What reached the probe subscription, as (key, seq) in arrival order, until every one of
/// `expected` event ids arrived (at least once).
async fn arrivals(config: &Config, probe: &str, expected: &[String]) -> Vec<(String, u64, String)> {
    let mut got: Vec<(String, u64, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let want: std::collections::HashSet<&str> = expected.iter().map(String::as_str).collect();
    loop {
        let seen: std::collections::HashSet<&str> = got.iter().map(|g| g.2.as_str()).collect();
        if want.iter().all(|id| seen.contains(id)) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} events arrived",
            seen.len(),
            want.len()
        );
        for m in receive(config, probe, 1000, Duration::from_millis(500)).await {
            let body: Value = serde_json::from_slice(&m.data).unwrap();
            let seq = body["payload"]["seq"].as_u64().unwrap_or(u64::MAX);
            got.push((m.ordering_key.clone(), seq, body["event_id"].as_str().unwrap().to_string()));
        }
    }
}

/// Per key, the events in the order of their first arrival must be the emitted order (a
/// re-publish after a crash may repeat events, never put one before an earlier one).
fn assert_order_per_key(arrived: &[(String, u64, String)], emitted: &HashMap<String, Vec<String>>) {
    let mut first: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (key, _, id) in arrived {
        if seen.insert(id.as_str()) {
            first.entry(key.as_str()).or_default().push(id.as_str());
        }
    }
    for (key, ids) in emitted {
        let got: Vec<&str> = first.get(key.as_str()).cloned().unwrap_or_default();
        let want: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(got, want, "key {key}: first arrivals follow the emit order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_events_survive_a_pubsub_outage_and_two_relay_kills_in_order() {
    let base = emulator_config("spool").build().unwrap();
    let probe = provision_with_probe(&base).await;
    let pubsub = Relay::start(&required_env("PUBSUB_EMULATOR_HOST")).await;
    pubsub.set_up(false);
    let dir = spool_dir();
    let config = spool_config(&base, &dir, &pubsub, None);

    // 200 events over 20 keys from 8 concurrent processes, one `suitex-events emit` per event;
    // each key is emitted by one of them, in seq order, while Pub/Sub is down.
    let mut tasks = Vec::new();
    for p in 0..8 {
        let config = config.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut ids: Vec<(String, String)> = Vec::new();
            let keys: Vec<usize> = (0..20).filter(|k| k % 8 == p).collect();
            for seq in 0..10 {
                for &key in &keys {
                    let out = emit(&config, &event(key, seq));
                    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
                    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
                    assert_eq!(receipt["spooled"], true, "{receipt}");
                    assert_eq!(receipt["message_id"], "", "no message id yet");
                    ids.push((
                        format!("42:customer:K-{key}"),
                        receipt["event_id"].as_str().unwrap().to_string(),
                    ));
                }
            }
            ids
        }));
    }
    let mut emitted: HashMap<String, Vec<String>> = HashMap::new();
    let mut all = Vec::new();
    for t in tasks {
        for (key, id) in t.await.unwrap() {
            emitted.entry(key).or_default().push(id.clone());
            all.push(id);
        }
    }
    assert_eq!(all.len(), 200);
    assert_eq!(depth(&config), 200, "every accepted event is in the spool");

    // A relay while Pub/Sub is down: it backs off and loses nothing.
    let first = relay(&config, &["--batch", "20"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(depth(&config), 200);
    // One relay per spool: a second one is refused, saying why.
    let second = command(&config, &["relay"]).output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("is drained by another relay already"),
        "{second:?}"
    );
    // Pub/Sub hangs mid-publish: killed with publishes in flight.
    pubsub.set_mode(RelayMode::Frozen);
    tokio::time::sleep(Duration::from_secs(1)).await;
    kill(first);

    // Back up: the second relay drains part of the spool and is killed mid-drain too.
    pubsub.set_up(true);
    // One event per round, so the test catches it mid-drain.
    let second = relay(&config, &["--batch", "1"]);
    eventually(Duration::from_secs(60), "the second relay publishes", || async { depth(&config) < 200 })
        .await;
    pubsub.set_mode(RelayMode::Frozen);
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(second);
    let left = depth(&config);
    assert!(left > 0, "killed mid-drain (nothing left: the test did not interrupt anything)");

    // SIGTERM while it waits out an outage: it stops at once, cleanly, keeping everything.
    pubsub.set_up(false);
    let mut waiting = relay(&config, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = std::time::Instant::now();
    // SAFETY: signalling a child process this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(waiting.id() as i32, libc::SIGTERM) }, 0);
    let status = waiting.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(asked.elapsed() < Duration::from_secs(5), "stopped without waiting out its back-off");
    assert_eq!(depth(&config), left, "nothing was lost or published while Pub/Sub was down");

    pubsub.set_up(true);
    let third = relay(&config, &["--until-empty"]).wait().unwrap();
    assert!(third.success());
    assert_eq!(depth(&config), 0);

    let arrived = arrivals(&base, &probe, &all).await;
    assert_order_per_key(&arrived, &emitted);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_event_waits_out_a_storage_outage_and_holds_only_its_own_key() {
    let base = emulator_config("spoolgcs").build().unwrap();
    let probe = provision_with_probe(&base).await;
    let pubsub = Relay::start(&required_env("PUBSUB_EMULATOR_HOST")).await;
    let storage = Relay::start(&required_env("STORAGE_EMULATOR_HOST")).await;
    storage.set_up(false);
    let dir = spool_dir();
    let config = spool_config(&base, &dir, &pubsub, Some(&storage));

    let big = json!({"account_id": 42, "aggregate_type": "customer", "aggregate_id": "BIG",
        "event_type": "customer.synced", "payload": {"seq": 0, "blob": "x".repeat(300 * 1024)}});
    let mut ids = Vec::new();
    for e in [
        big,
        event(1, 0),
        json!({"account_id": 42, "aggregate_type": "customer", "aggregate_id": "BIG",
        "event_type": "customer.updated", "payload": {"seq": 1}}),
    ] {
        let out = emit(&config, &e);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        ids.push(
            serde_json::from_slice::<Value>(&out.stdout).unwrap()["event_id"].as_str().unwrap().to_string(),
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let r = relay(&config, &["--metrics-addr", &metrics_addr]);
    // The other key goes through; BIG waits for its upload, and its second event behind it.
    let other = arrivals(&base, &probe, &ids[1..2]).await;
    assert_eq!(other.len(), 1, "only K-1's event, nothing of BIG: {other:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(depth(&config), 2, "BIG's two events wait in the spool");
    let metrics = scrape(&metrics_addr);
    assert!(metrics.contains("\nsuitex_events_relay_spool_depth 2.0\n"), "{metrics}");
    assert!(metrics.contains("\nsuitex_events_relay_published_total 1\n"), "{metrics}");
    let retries: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("suitex_events_relay_retries_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(retries >= 2, "{metrics}");
    assert!(metrics.contains("# TYPE suitex_events_relay_spool_oldest_age_seconds gauge"), "{metrics}");

    storage.set_up(true);
    let arrived = arrivals(&base, &probe, &[ids[0].clone(), ids[2].clone()]).await;
    kill(r);
    let big_key: Vec<&(String, u64, String)> = arrived.iter().filter(|a| a.0 == "42:customer:BIG").collect();
    assert_eq!(
        big_key.iter().map(|a| a.2.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str(), ids[2].as_str()],
        "the oversized event first, then the one behind it"
    );
    let objects = list_objects(&base.names().payload_bucket, "").await;
    assert_eq!(objects.len(), 1, "the oversized payload went to the claim-check bucket: {objects:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_at_once_naming_the_limit_and_keeps_what_it_holds() {
    let base = emulator_config("spoolfull").build().unwrap();
    let pubsub = Relay::start(&required_env("PUBSUB_EMULATOR_HOST")).await;
    pubsub.set_up(false);
    let dir = spool_dir();
    let config = Config::builder(base.project())
        .names(base.names().clone())
        .pubsub_endpoint(Endpoint::emulator(&format!("127.0.0.1:{}", pubsub.port())))
        .spool(&dir)
        .spool_max_bytes(64 * 1024)
        .build()
        .unwrap();
    let mut accepted = 0;
    let refused = loop {
        let started = std::time::Instant::now();
        let mut e = event(1, accepted);
        e["payload"]["blob"] = json!("x".repeat(10_000));
        let out = emit(&config, &e);
        if out.status.code() != Some(0) {
            assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after a wait");
            break out;
        }
        accepted += 1;
        assert!(accepted < 100, "the limit was never reached");
    };
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("SUITEX_EVENTS_SPOOL_MAX_BYTES = 65536"), "{stderr}");
    assert!(stderr.contains("nothing was spooled"), "{stderr}");
    assert!(accepted > 0);
    assert_eq!(depth(&config), accepted as u64, "what was accepted is still there");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_table_with_its_reason_and_its_key_goes_on() {
    let base = emulator_config("spoolpoison").build().unwrap();
    let probe = provision_with_probe(&base).await;
    let pubsub = Relay::start(&required_env("PUBSUB_EMULATOR_HOST")).await;
    let dir = spool_dir();
    let config = spool_config(&base, &dir, &pubsub, None);
    let good = |seq| {
        let out = emit(&config, &event(7, seq));
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["event_id"].as_str().unwrap().to_string()
    };
    let first = good(0);
    // A row no relay can publish (written by hand: emit_event never spools one).
    Spool::open(&dir, config.spool_max_bytes(), &SpoolAccess::of(&config).unwrap())
        .unwrap()
        .append(&[Entry {
            ordering_key: "42:customer:K-7".into(),
            event_id: "bad".into(),
            body: b"{\"not\": 1}".to_vec(),
        }])
        .unwrap();
    let last = good(1);

    let out = command(&config, &["relay", "--until-empty"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let arrived = arrivals(&base, &probe, &[first.clone(), last.clone()]).await;
    assert_eq!(arrived.iter().map(|a| a.2.clone()).collect::<Vec<_>>(), [first, last]);

    let listed = command(&config, &["spool", "list"]).output().unwrap();
    let dead: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(dead["event_id"], "bad");
    assert!(dead["reason"].as_str().unwrap().contains("not a valid event"), "{dead}");
    let status: Value =
        serde_json::from_slice(&command(&config, &["spool", "status"]).output().unwrap().stdout).unwrap();
    assert_eq!((status["depth"].as_u64(), status["dead"].as_u64()), (Some(0), Some(1)), "{status}");
    std::fs::remove_dir_all(dir).unwrap();
}
