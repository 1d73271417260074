//! What operators run against the backbone: the alerting rules (`deploy/prometheus/`) pass
//! `promtool check rules` and their unit tests (every alert firing and not firing), and a real
//! Prometheus scraping a running worker and a spool relay answers every query of the Grafana
//! dashboard (`deploy/grafana/`) with data. Prometheus and promtool come from Debian's
//! `prometheus` package (`scripts/setup --test`); a missing one fails the test.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use suitex_events::{Config, Emitter, Event};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed: scripts/setup --test installs Debian's prometheus package"
    );
    Command::new(name)
}

#[test]
fn the_alerting_rules_are_valid_and_every_alert_is_unit_tested() {
    let dir = deploy().join("prometheus");
    for args in
        [["check", "rules", "suitex-events.rules.yml"], ["test", "rules", "suitex-events.rules.test.yml"]]
    {
        let out = tool("promtool").args(args).current_dir(&dir).output().unwrap();
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {args:?}: {said}");
    }
    // Every alert has a test case.
    let rules = std::fs::read_to_string(dir.join("suitex-events.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("suitex-events.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in alerts {
        assert!(tests.contains(&format!("alertname: {alert}\n")), "{alert} has no promtool test case");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn query(prometheus: &str, expr: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("querying Prometheus for {expr}: {e}"));
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scraping_a_worker_and_a_relay_answers_every_dashboard_query() {
    // A worker storing events, with its endpoint.
    let config = emulator_config("observe").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("observe").await;
    let (worker, worker_addr) =
        RunningWorker::start_serving(&config, &db.settings, suitex_events::worker::WorkerOptions::default())
            .await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    for n in 0..20u64 {
        let e = Event::builder()
            .account_id(9)
            .aggregate("customer", format!("O-{}", n % 4))
            .event_type("customer.updated")
            .payload(json!({"n": n}))
            .build()
            .unwrap();
        emitter.emit_event(e).await.unwrap();
    }
    eventually(Duration::from_secs(30), "the events are stored", || async { db.rows().await == 20 }).await;

    // A spool relay with its endpoint.
    let spool = tempdir("observe-spool");
    // The spool holds tenants' payloads: the relay refuses a directory others may read.
    std::fs::set_permissions(&spool, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let relay_port = free_port();
    let spool_config = Config::builder(config.project())
        .names(config.names().clone())
        .pubsub_endpoint(config.pubsub_endpoint().clone())
        .storage_endpoint(config.storage_endpoint().clone())
        .spool(&spool)
        .build()
        .unwrap();
    let relay = Killed(
        Command::new(BIN)
            .arg("relay")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(spool_config.to_settings())
            .env("SUITEX_RELAY_METRICS_ADDR", format!("127.0.0.1:{relay_port}"))
            .env("SUITEX_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(spool.join("relay.log")).unwrap())
            .spawn()
            .expect("run suitex-events relay"),
    );

    // Prometheus scraping both every second.
    let home = tempdir("observe-prometheus");
    let web = free_port();
    std::fs::write(
        home.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: suitex-events-worker\n    static_configs:\n      - targets: ['{worker_addr}']\n  - job_name: suitex-events-relay\n    static_configs:\n      - targets: ['127.0.0.1:{relay_port}']\n",
            rules = deploy().join("prometheus/suitex-events.rules.yml").display()
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        tool("prometheus")
            .arg(format!("--config.file={}", home.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", home.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prometheus"),
    );
    let prometheus = format!("http://127.0.0.1:{web}");
    eventually(Duration::from_secs(60), "Prometheus scrapes the worker and the relay", || async {
        let up = reqwest::Client::new()
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", "sum(up{job=~\"suitex-events-.*\"})")])
            .send()
            .await;
        match up {
            Ok(resp) => {
                resp.json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["data"]["result"][0]["value"][1].as_str().map(|n| n == "2"))
                    == Some(true)
            }
            Err(_) => false,
        }
    })
    .await;
    // Windows of rate() and increase() need a few samples.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/suitex-events.dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut empty = Vec::new();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 15);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let answer = query(&prometheus, expr).await;
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
            if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
                empty.push(format!("{} ({expr})", panel["title"]));
            }
        }
    }
    assert!(empty.is_empty(), "dashboard panels without data: {empty:?}");
    // The worker stored 20 events: the dashboard's first panel saw them.
    let stored = query(&prometheus, "sum(suitex_events_appended_total)").await;
    assert_eq!(stored["data"]["result"][0]["value"][1], "20", "{stored}");
    worker.stop().await;

    drop(relay); // stopped: its log is complete
    // The relay logged in Cloud Logging's shape: every line parses with jq and has severity
    // and message.
    let log = spool.join("relay.log");
    let out = Command::new("jq")
        .args(["-c", "-e", "select(.severity and .message and .time) | {severity, message}"])
        .stdin(std::fs::File::open(&log).unwrap())
        .output()
        .expect("jq runs");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "jq: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let parsed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        parsed.lines().count(),
        text.lines().count(),
        "every line is one object with severity and message:\n{text}"
    );
    assert!(parsed.contains(r#"{"severity":"INFO","message":"relay started"}"#), "{parsed}");
}

fn tempdir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
