//! The operator commands as run from a shell: migrate, worker-user, replay, dlq.

use std::process::{Command, Output};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

fn run(db: &suitex_events::store::StoreSettings, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PUBSUB_EMULATOR_HOST", required_env("PUBSUB_EMULATOR_HOST"))
        .env("STORAGE_EMULATOR_HOST", required_env("STORAGE_EMULATOR_HOST"))
        .envs(db.to_settings())
        .env("SUITEX_WORKER_DB_PASSWORD", "cli-secret")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn migrate_is_idempotent_and_creates_the_table() {
    let server = mysql_server();
    let name = format!("t_cli_migrate_{}", unique());
    let admin = suitex_events::store::EventStore::connect(&server).await.unwrap();
    admin.execute(&format!("CREATE DATABASE `{name}`")).await.unwrap();
    let settings = server.clone().with_database(&name);
    for _ in 0..2 {
        let out = run(&settings, &["migrate"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("create event store"), "{}", text(&out.stdout));
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'event_store'",
    )
    .bind(&name)
    .fetch_one(admin.pool())
    .await
    .unwrap();
    assert_eq!(tables, 1);
    admin.execute(&format!("DROP DATABASE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn worker_user_prints_and_creates_an_insert_select_account() {
    let db = TestDb::new("cli_user").await;
    let out = run(&db.settings, &["worker-user", "--user", "cli_w", "--print"]);
    assert_eq!(out.status.code(), Some(0));
    let sql = text(&out.stdout);
    assert!(sql.contains("IDENTIFIED BY '********'"), "{sql}");
    assert!(
        sql.contains(&format!("GRANT INSERT, SELECT ON `{}`.`event_store`", db.settings.database)),
        "{sql}"
    );

    let user = format!("cw_{}", &unique()[..8]);
    let out = run(&db.settings, &["worker-user", "--user", &user, "--host", "%"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let grants: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW GRANTS FOR '{user}'@'%'")))
            .fetch_all(db.store.pool())
            .await
            .unwrap();
    let table_grant = grants.iter().find(|g| g.contains("event_store")).expect("a grant on event_store");
    assert!(table_grant.starts_with("GRANT SELECT, INSERT ON"), "{table_grant}");
    db.store.execute(&format!("DROP USER '{user}'@'%'")).await.unwrap();
}

#[test]
fn replay_and_dlq_refuse_ambiguous_selections_with_exit_78() {
    let settings = mysql_server();
    let cases: [(&[&str], &str); 4] = [
        (&["replay"], "give one of: --account N --aggregate TYPE:ID"),
        (&["replay", "--aggregate", "customer:C-1"], "--aggregate needs --account"),
        (&["replay", "--from-id", "9", "--to-id", "3"], "--from-id 9 is after --to-id 3"),
        (&["dlq", "redrive"], "redrive needs --account N, --event-id ID, or --all"),
    ];
    for (args, expected) in cases {
        let out = run(&settings, args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expected), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn a_command_whose_output_is_closed_ends_quietly_by_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    // `suitex-events worker-user --print | head -0`: the reading end is gone before it writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["worker-user", "--print"])
        .env_clear()
        .env("DB_EVENT_STORE_DATABASE", "event_store")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "status {:?}, stderr: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
