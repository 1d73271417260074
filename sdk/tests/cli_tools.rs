//! The operator commands as run from a shell: migrate, grants (and worker-user), replay, dlq.

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

/// A new, empty database on the test server: an admin connection, its name, its settings.
async fn empty_database(
    prefix: &str,
) -> (suitex_events::store::EventStore, String, suitex_events::store::StoreSettings) {
    let server = mysql_server();
    let name = format!("{prefix}{}", unique());
    let admin = suitex_events::store::EventStore::connect(&server).await.unwrap();
    admin.execute(&format!("CREATE DATABASE `{name}`")).await.unwrap();
    let settings = server.with_database(&name);
    (admin, name, settings)
}

#[tokio::test]
async fn migrate_is_idempotent_and_creates_the_table() {
    let (admin, name, settings) = empty_database("t_cli_migrate_").await;
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

/// The account as a store connection.
fn as_account(
    settings: &suitex_events::store::StoreSettings,
    user: &str,
    password: &str,
) -> suitex_events::store::StoreSettings {
    suitex_events::store::StoreSettings {
        username: user.into(),
        password: password.into(),
        ..settings.clone()
    }
}

/// `GRANT a, b ON obj` → (obj, {a, b}), for comparing grants whatever order the server prints.
fn grant_set(line: &str) -> (String, std::collections::BTreeSet<String>) {
    let head = line.strip_prefix("GRANT ").unwrap_or(line);
    let head = &head[..head.find(" TO ").unwrap_or(head.len())];
    let (privileges, object) = head.split_once(" ON ").unwrap_or((head, ""));
    (object.to_string(), privileges.split(", ").map(str::to_string).collect())
}

/// An account made as broad as Cloud SQL makes API-created ones: every privilege on everything,
/// GRANT OPTION, a granted default role, a column grant on the ledger.
async fn overprivileged_account(db: &TestDb, user: &str, role_name: &str) {
    let database = &db.settings.database;
    for sql in [
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'broad-pass'"),
        format!("GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION"),
        format!("GRANT UPDATE (payload) ON `{database}`.`event_store` TO '{user}'@'%'"),
        format!("CREATE ROLE IF NOT EXISTS {role_name}"),
        format!("GRANT DELETE ON `{database}`.* TO {role_name}"),
        format!("GRANT {role_name} TO '{user}'@'%'"),
        format!("SET DEFAULT ROLE {role_name} FOR '{user}'@'%'"),
    ] {
        db.store.execute(&sql).await.unwrap();
    }
}

#[tokio::test]
async fn grants_leave_an_all_privileges_account_with_exactly_its_role_and_check_says_so() {
    let db = TestDb::new("cli_grants").await;
    let database = db.settings.database.clone();
    let role_name = format!("broad_{}", &unique()[..8]);
    let expected: [(&str, &[&str]); 3] = [
        ("reader", &["GRANT SELECT ON `{db}`.`event_store`"]),
        (
            "writer",
            &[
                "GRANT SELECT, INSERT ON `{db}`.`event_store`",
                "GRANT SELECT, INSERT ON `{db}`.`event_store_merged_position`",
                "GRANT SELECT, INSERT ON `{db}`.`event_store_parking`",
                "GRANT SELECT, INSERT ON `{db}`.`event_store_parked_events`",
            ],
        ),
        (
            "migrator",
            &[
                "GRANT ALTER, CREATE, DROP, INDEX, REFERENCES, SELECT, TRIGGER ON `{db}`.*",
                "GRANT CREATE, DELETE, INSERT, UPDATE ON `{db}`.`_sqlx_migrations`",
                "GRANT CREATE, DELETE, INSERT, UPDATE ON `{db}`.`migrations`",
                "GRANT CREATE, INSERT, UPDATE ON `{db}`.`event_store_sequence`",
                "GRANT CREATE, INSERT, UPDATE ON `{db}`.`event_store_aggregates`",
                "GRANT CREATE, UPDATE ON `{db}`.`event_store`",
            ],
        ),
    ];
    for (role, grants) in expected {
        let user = format!("g{}_{}", &role[..1], &unique()[..8]);
        overprivileged_account(&db, &user, &role_name).await;

        let before = run(&db.settings, &["grants", "--role", role, "--user", &user, "--check"]);
        assert_eq!(before.status.code(), Some(1), "{role}: {}", text(&before.stdout));
        let complaint = text(&before.stderr);
        for extra in [
            "ALL PRIVILEGES ON *.*",
            "GRANT OPTION ON *.*",
            &format!("role `{role_name}`"),
            "UPDATE (`PAYLOAD`)",
        ] {
            assert!(complaint.contains(extra), "{role}: --check names {extra}: {complaint}");
        }

        let out = run(&db.settings, &["grants", "--role", role, "--user", &user]);
        assert_eq!(out.status.code(), Some(0), "{role}: {}", text(&out.stderr));
        let shown: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW GRANTS FOR '{user}'@'%'")))
                .fetch_all(db.store.pool())
                .await
                .unwrap();
        let mut rest: Vec<&String> = shown.iter().filter(|g| !g.starts_with("GRANT USAGE ON *.*")).collect();
        for g in grants {
            let g = g.replace("{db}", &database);
            let at = rest
                .iter()
                .position(|s| grant_set(s) == grant_set(&g))
                .unwrap_or_else(|| panic!("{role}: {g} in {shown:?}"));
            rest.remove(at);
        }
        assert!(rest.is_empty(), "{role}: nothing but the role is left: {rest:?}");
        assert!(!shown.iter().any(|g| g.contains("WITH GRANT OPTION")), "{shown:?}");
        assert!(
            text(&out.stdout).contains(&format!("holds exactly the {role} role")),
            "{}",
            text(&out.stdout)
        );
        let default_role: Option<String> =
            sqlx::query_scalar("SELECT default_role FROM mysql.user WHERE user = ? AND host = '%'")
                .bind(&user)
                .fetch_one(db.store.pool())
                .await
                .unwrap();
        assert_eq!(default_role.unwrap_or_default(), "", "{role}: no role is activated at login");

        let after = run(&db.settings, &["grants", "--role", role, "--user", &user, "--check"]);
        assert_eq!(after.status.code(), Some(0), "{role}: {}", text(&after.stderr));
        db.store.execute(&format!("DROP USER '{user}'@'%'")).await.unwrap();
    }
    db.store.execute(&format!("DROP ROLE {role_name}")).await.unwrap();
}

#[tokio::test]
async fn each_role_is_refused_by_the_database_what_it_does_not_hold() {
    let db = TestDb::new("cli_roles").await;
    let event = || {
        suitex_events::Event::builder()
            .account_id(1)
            .aggregate("customer", "R-1")
            .event_type("customer.updated")
            .payload(serde_json::json!({"a": 1}))
            .build()
            .unwrap()
    };
    db.store.append(&[event()]).await.unwrap();
    let mut accounts = Vec::new();
    for role in ["reader", "writer"] {
        let user = format!("r{}_{}", &role[..1], &unique()[..8]);
        let out = run(
            &db.settings,
            &["grants", "--role", role, "--user", &user, "--password-env", "SUITEX_WORKER_DB_PASSWORD"],
        );
        assert_eq!(out.status.code(), Some(0), "{role}: {}", text(&out.stderr));
        accounts.push(user);
    }

    let reader =
        suitex_events::store::EventStore::connect(&as_account(&db.settings, &accounts[0], "cli-secret"))
            .await
            .unwrap();
    let tenant = suitex_events::store::Selection::Tenant { account_id: 1 };
    assert_eq!(reader.count(&tenant).await.unwrap(), 1, "the reader reads");
    let refused = reader.append(&[event()]).await.expect_err("the reader cannot insert");
    assert!(refused.to_string().contains("INSERT command denied"), "{refused}");

    let writer =
        suitex_events::store::EventStore::connect(&as_account(&db.settings, &accounts[1], "cli-secret"))
            .await
            .unwrap();
    writer.append(&[event()]).await.expect("the writer appends");
    for sql in [
        "UPDATE event_store SET event_type = 'x'",
        "DELETE FROM event_store",
        "TRUNCATE TABLE event_store",
        "DROP TABLE event_store",
    ] {
        let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(writer.pool()).await.expect_err(sql);
        assert!(e.to_string().contains("command denied"), "{sql}: {e}");
    }
    for user in accounts {
        db.store.execute(&format!("DROP USER '{user}'@'%'")).await.unwrap();
    }
}

#[tokio::test]
async fn the_migrator_role_runs_migrations_and_cannot_append() {
    let (admin, name, settings) = empty_database("t_cli_migrator_").await;
    let user = format!("gm_{}", &unique()[..8]);
    let out = run(
        &settings,
        &["grants", "--role", "migrator", "--user", &user, "--password-env", "SUITEX_WORKER_DB_PASSWORD"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let migrator = as_account(&settings, &user, "cli-secret");
    let out = run(&migrator, &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "the migrator migrates: {}", text(&out.stderr));
    let store = suitex_events::store::EventStore::connect(&migrator).await.unwrap();
    let e = sqlx::raw_sql(sqlx::AssertSqlSafe(
        "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) \
         VALUES (1, UUID(), 'a', 'b', 'c', '{}', NOW())",
    ))
    .execute(store.pool())
    .await
    .expect_err("the migrator does not append");
    assert!(e.to_string().contains("INSERT command denied"), "{e}");
    admin.execute(&format!("DROP DATABASE `{name}`")).await.unwrap();
    admin.execute(&format!("DROP USER '{user}'@'%'")).await.unwrap();
}
