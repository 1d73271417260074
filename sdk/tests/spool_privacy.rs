//! The spool keeps tenant data private on a shared web host (docs/architecture.md §2.6): created
//! owner-only (or owner + one group) under the usual `umask 022`, refused when others can read
//! it, and shared across users only through the configured group.
//!
//! Runs as root (like the rest of the suite) and switches users with `setpriv` for the shared
//! group case: `www-data` emits, `nobody` relays, both in the group `staff`.

use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use suitex_events::config::Endpoint;
use suitex_events::{Config, Emitter, Event};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

/// A fresh directory under the temporary directory, open to every user (like /tmp itself), in
/// which the spool is made.
fn parent_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("suitex-spool-privacy-{}", unique()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `suitex-events ARGS` under `umask 022`, optionally as another user (`setpriv` arguments), with
/// `config`'s settings and `extra` variables.
fn run(
    binary: &str,
    user: &[&str],
    config: &Config,
    extra: &[(&str, &str)],
    args: &[&str],
    input: &str,
) -> Output {
    let mut script = String::from("umask 022; exec");
    for word in user.iter().chain([&binary]).chain(args) {
        script.push_str(&format!(" '{word}'"));
    }
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SUITEX_RELAY_METRICS_ADDR", "off")
        .envs(config.to_settings())
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run suitex-events");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn event_json(n: usize) -> String {
    json!({"account_id": 42, "aggregate_type": "customer", "aggregate_id": format!("P-{n}"),
        "event_type": "customer.updated", "payload": {"secret": "tenant data", "n": n}})
    .to_string()
}

/// A configuration in spool mode on `dir` (Pub/Sub is not contacted by a spooled emit).
fn spool_config(dir: &Path) -> Config {
    emulator_config("privacy").spool(dir).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_spool_and_every_file_in_it_are_private_under_umask_022() {
    // SAFETY: the file creation mask of this test process; every test here wants the usual 022.
    unsafe { libc::umask(0o022) };
    let parent = parent_dir();
    let dir = parent.join("spool");
    // From Rust, with the spool open (so SQLite's -wal and -shm files exist).
    let emitter = Emitter::connect(spool_config(&dir)).await.unwrap();
    let event = Event::from_input_json(event_json(1).as_bytes()).unwrap();
    assert!(emitter.emit_event(event).await.unwrap().spooled);
    assert_eq!(mode(&dir), 0o700, "the spool directory");
    let files = entries(&dir);
    for wanted in ["spool.sqlite3", "spool.sqlite3-wal", "spool.sqlite3-shm"] {
        assert!(files.contains(&wanted.to_string()), "{wanted} in {files:?}");
    }
    for file in &files {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}: no access for group or others");
    }
    drop(emitter);

    // From the command line, in a spool it creates.
    let dir = parent.join("cli-spool");
    let out = run(BIN, &[], &spool_config(&dir), &[], &["emit"], &event_json(2));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&dir), 0o700);
    for file in entries(&dir) {
        assert_eq!(mode(&dir.join(&file)), 0o600, "{file}");
    }
    std::fs::remove_dir_all(parent).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_directory_others_can_read_is_refused_by_emit_and_relay_and_nothing_is_written_there() {
    let parent = parent_dir();
    for made in [0o777, 0o755] {
        let dir = parent.join(format!("spool-{made:o}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(made)).unwrap();
        let config = spool_config(&dir);
        let expected = [
            format!("{} is mode {made:04o}, owner root (uid 0), group root (gid 0)", dir.display()),
            "others may read or write it".to_string(),
            format!("fix it with `chmod 700 {}`", dir.display()),
        ];

        // Rust.
        let Err(err) = Emitter::connect(config.clone()).await else {
            panic!("a spool others can read is refused")
        };
        let err = err.to_string();
        for e in &expected {
            assert!(err.contains(e.as_str()), "Rust: {e:?} in {err}");
        }
        assert!(err.contains("SUITEX_EVENTS_SPOOL names a spool directory that is not private"), "{err}");

        // The command line: emit, relay and spool status.
        for args in [&["emit"][..], &["relay", "--until-empty"], &["spool", "status"]] {
            let out = run(BIN, &[], &config, &[], args, &event_json(1));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{args:?} exits with EX_CONFIG: {stderr}");
            for e in &expected {
                assert!(stderr.contains(e.as_str()), "{args:?}: {e:?} in {stderr}");
            }
        }
        assert_eq!(entries(&dir), Vec::<String>::new(), "nothing was written into the refused spool");
        assert_eq!(mode(&dir), made, "and its mode was left as the operator made it");

        // After the documented fix, the same spool works.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = run(BIN, &[], &config, &[], &["emit"], &event_json(1));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::remove_dir_all(parent).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbolic_link_owned_by_another_user_is_refused() {
    let parent = parent_dir();
    let target = parent.join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = parent.join("spool");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(33), Some(33)).unwrap(); // www-data
    let out = run(BIN, &[], &spool_config(&link), &[], &["emit"], &event_json(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("is a symbolic link owned by another user"), "{stderr}");
    assert!(stderr.contains("owner www-data (uid 33)"), "{stderr}");
    assert_eq!(entries(&target), Vec::<String>::new(), "nothing was written behind the link");
    std::fs::remove_dir_all(parent).unwrap();
}

/// The web tier's user (`www-data`) spools; a relay running as another user (`nobody`) in the
/// configured group (`staff`) drains it. Without the group setting, that relay is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_in_the_configured_group_drains_a_spool_that_the_web_user_wrote() {
    let base = emulator_config("privacy-group").build().unwrap();
    let probe = provision_with_probe(&base).await;
    let parent = parent_dir();
    // The binary where both users can run it (the checkout may be private to root).
    let bin_dir = parent.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = bin_dir.join("suitex-events");
    std::fs::copy(BIN, &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = binary.to_str().unwrap();

    let dir = parent.join("spool");
    let config = Config::builder(base.project())
        .names(base.names().clone())
        .pubsub_endpoint(base.pubsub_endpoint().clone())
        .storage_endpoint(Endpoint::emulator(&required_env("STORAGE_EMULATOR_HOST")))
        .spool(&dir)
        .build()
        .unwrap();
    let group = [("SUITEX_EVENTS_SPOOL_GROUP", "staff")];
    let web = ["setpriv", "--reuid=33", "--regid=33", "--groups=50", "--"];
    let relay_user = ["setpriv", "--reuid=65534", "--regid=65534", "--groups=50", "--"];

    let mut ids = Vec::new();
    for n in 0..3 {
        let out = run(binary, &web, &config, &group, &["emit"], &event_json(n));
        assert!(out.status.success(), "emit as www-data: {}", String::from_utf8_lossy(&out.stderr));
        let receipt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.push(receipt["event_id"].as_str().unwrap().to_string());
    }
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o2770, 33, 50),
        "directory 2770 www-data:staff"
    );
    for file in entries(&dir) {
        let meta = std::fs::metadata(dir.join(&file)).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 50), "{file}: 0660, group staff");
    }

    // Another user without the group setting: the spool is not its own, refused.
    let out = run(binary, &relay_user, &config, &[], &["relay", "--until-empty"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("belongs to www-data (uid 33), not to nobody (uid 65534)"), "{stderr}");

    // The same user in the configured group drains it.
    let out = run(binary, &relay_user, &config, &group, &["relay", "--until-empty"], "");
    assert!(out.status.success(), "relay as nobody in staff: {}", String::from_utf8_lossy(&out.stderr));
    let received = receive(&base, &probe, ids.len(), Duration::from_secs(30)).await;
    let mut got: Vec<String> = received.iter().map(|m| attr(m, "event_id").to_string()).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every spooled event was published by the relay");
    let status = run(binary, &relay_user, &config, &group, &["spool", "status"], "");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["depth"], 0, "{status}");
    std::fs::remove_dir_all(parent).unwrap();
}
