//! `suitex-events emit` and `suitex-events provision` as a user runs them.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use suitex_events::Config;
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

/// Runs the binary with the environment pointing at `config`'s names on the emulators.
fn run(config: &Config, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(config.to_settings())
        // The ledger's digest bucket, of this test's own like its claim-check bucket.
        .env("SUITEX_WORKER_DIGEST_BUCKET", format!("{}-digests", config.names().payload_bucket))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run suitex-events");
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const GOOD: &str = r#"{"account_id": 42, "aggregate_type": "customer", "aggregate_id": "C-1001",
    "event_type": "customer.updated", "payload": {"name": "Ada"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_prints_the_receipt_for_stdin_and_file_input() {
    let config = emulator_config("cli").build().unwrap();
    let probe = provision_with_probe(&config).await;

    let out = run(&config, &["emit"], Some(GOOD));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["payload_location"], "inline");
    assert!(receipt["message_id"].as_str().is_some_and(|s| !s.is_empty()));
    let first_id = receipt["event_id"].as_str().unwrap().to_string();

    let dir = std::env::temp_dir().join(format!("suitex-cli-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("event.json");
    std::fs::write(&file, GOOD).unwrap();
    let out = run(&config, &["emit", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let second_id =
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["event_id"].as_str().unwrap().to_string();

    let batch = format!("[{GOOD}, {GOOD}]");
    let out = run(&config, &["emit", "-"], Some(&batch));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let receipts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipts.len(), 2);

    let got = receive(&config, &probe, 4, std::time::Duration::from_secs(30)).await;
    let ids: Vec<&str> = got.iter().map(|m| attr(m, "event_id")).collect();
    assert_eq!(got.len(), 4, "{ids:?}");
    assert!(ids.contains(&first_id.as_str()) && ids.contains(&second_id.as_str()));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn emit_refuses_bad_input_with_exit_65_and_the_validation_message() {
    let config = emulator_config("cli-bad").build().unwrap();
    let long_id = GOOD.replace("C-1001", &"x".repeat(240));
    let cases = [
        (long_id.as_str(), "error: aggregate_id is 240 bytes; the limit is 191\n"),
        (
            "{\"account_id\": 42",
            "error: event is not valid JSON: EOF while parsing an object at line 1 column 17\n",
        ),
        (
            r#"{"account_id": 0, "aggregate_type": "c", "aggregate_id": "1", "event_type": "e", "payload": 1}"#,
            "error: account_id must be an integer from 1 to 18446744073709551615; got 0\n",
        ),
    ];
    for (input, expected) in cases {
        let out = run(&config, &["emit"], Some(input));
        assert_eq!(out.status.code(), Some(65), "input {input}: stderr {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), expected);
        assert!(out.stdout.is_empty(), "nothing printed on stdout: {}", text(&out.stdout));
    }
    let batch = format!("[{GOOD}, {}]", GOOD.replace("customer.updated", "customer updated"));
    let out = run(&config, &["emit"], Some(&batch));
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        text(&out.stderr),
        "error: events[1].event_type contains U+0020 at character 9; allowed are a-z, A-Z, 0-9, '_', '.', '-'\n"
    );
}

#[test]
fn emit_without_a_project_or_emulator_is_a_configuration_error() {
    let out = Command::new(BIN)
        .arg("emit")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(GOOD.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("SUITEX_EVENTS_PROJECT is not set"), "{}", text(&out.stderr));
}

#[test]
fn provision_is_idempotent_and_warns_when_ordering_is_off() {
    let config = emulator_config("cli-prov").build().unwrap();
    let first = run(&config, &["provision", "--without-ordering"], None);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    // Three topics, three subscriptions (the workers', the operators' dead letters, the dead-letter
    // watch), the claim-check bucket and the digest bucket.
    assert_eq!(stdout.matches("created").count(), 8, "{stdout}");
    assert!(text(&first.stderr).contains("WITHOUT message ordering"), "{}", text(&first.stderr));

    let second = run(&config, &["provision", "--without-ordering"], None);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout).matches("exists").count(), 8, "{}", text(&second.stdout));
    assert_eq!(text(&second.stdout).matches("created").count(), 0);
}

#[test]
fn provision_refuses_real_google_endpoints() {
    let out = Command::new(BIN)
        .arg("provision")
        .env_clear()
        .env("SUITEX_EVENTS_PROJECT", "suitex-prod")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("terraform/"), "{}", text(&out.stderr));
}
