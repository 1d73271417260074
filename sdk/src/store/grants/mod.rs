//! Database accounts and their roles: who may do what to the event store.
//!
//! Three roles, each with exactly its rights (docs/architecture.md §2.3):
//!
//! | role       | privileges                                                        | used by |
//! |------------|-------------------------------------------------------------------|---------|
//! | `migrator` | DDL on the database (`CREATE, ALTER, INDEX, DROP, REFERENCES, TRIGGER, SELECT`); `CREATE, INSERT, UPDATE, DELETE` on the migration bookkeeping tables `_sqlx_migrations` and `migrations`; `CREATE, INSERT, UPDATE` on the order counters `event_store_sequence` and `event_store_aggregates`; `CREATE, UPDATE` on `event_store` (see below) | `suitex-events migrate`, `php artisan migrate --database=event_store`: a job, never a running service |
//! | `writer`   | `INSERT, SELECT` on `event_store`, on `event_store_merged_position` and on the parking tables `event_store_parking` and `event_store_parked_events` | the worker (and its `events.merged` feeder) |
//! | `reader`   | `SELECT` on `event_store`                                         | the web tier and reporting, when they read the ledger |
//!
//! The migrator holds `UPDATE` on `event_store` because it is the definer of the trigger that
//! numbers each appended row (`seq`, `aggregate_version`): MySQL checks a trigger's statements
//! against its definer, and assigning `NEW.column` needs `UPDATE` on the table. Column-level
//! grants cannot be given before the columns exist, and the role is granted before the first
//! migration. No UPDATE statement reaches a row either way: the `event_store_no_update`
//! trigger refuses it for every account, and the migrator's DDL rights already exceed it.
//!
//! No role may UPDATE or DELETE a stored event. [`EventStore::apply_role`] makes an account's
//! grants *exactly* its role's: it revokes everything else first (global, database, table and
//! column privileges, `GRANT OPTION`, proxy grants and granted roles — on Cloud SQL, accounts
//! created through the API hold the broad `cloudsqlsuperuser` role), then grants the role's
//! privileges, then reads `SHOW GRANTS` back and fails unless it matches.
//! [`EventStore::check_role`] only reads and compares; `suitex-events grants --check` exits
//! non-zero when an account holds more (or less) than its role.

use super::EventStore;
use super::event_store::db_error;
use crate::error::{ConfigError, Error, Result};
use std::collections::BTreeSet;
use std::fmt;

mod show_grants;

pub use show_grants::{GrantCheck, check_grants};
use show_grants::{GrantLine, parse_grant};

/// What an account is for; decides its privileges on the event-store database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Creates and changes the schema (migrations); never used by a running service.
    Migrator,
    /// Appends events and reads them back (the worker): INSERT and SELECT on `event_store`, on
    /// `event_store_merged_position` (the `events.merged` feeder's position) and on the
    /// parking tables ([`PARKING_TABLES`]).
    Writer,
    /// Reads the ledger: SELECT on `event_store`.
    Reader,
}

/// The migration bookkeeping tables the migrator writes: sqlx's (`suitex-events migrate`) and
/// Laravel's (`php artisan migrate --database=event_store`).
const MIGRATION_TABLES: [&str; 2] = ["_sqlx_migrations", "migrations"];

/// The tables that hold the ledger's order counters, which the numbering trigger (run with the
/// migrator's rights) writes.
const ORDER_TABLES: [&str; 2] = ["event_store_sequence", "event_store_aggregates"];

/// The table of the `events.merged` feeder's position.
pub const MERGED_POSITION_TABLE: &str = "event_store_merged_position";

/// The tables of parked keys and the events kept aside behind them (append-only, like the
/// ledger).
pub const PARKING_TABLES: [&str; 2] = ["event_store_parking", "event_store_parked_events"];

impl Role {
    /// Every role, in order of decreasing rights.
    pub const ALL: [Role; 3] = [Role::Migrator, Role::Writer, Role::Reader];

    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Migrator => "migrator",
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }

    /// The privileges the role holds on `database`, one per (object, privilege) pair.
    pub fn privileges(self, database: &str) -> BTreeSet<Privilege> {
        self.grants(database)
            .into_iter()
            .flat_map(|(object, privileges)| {
                privileges.iter().map(move |p| Privilege { object: object.clone(), privilege: p.to_string() })
            })
            .collect()
    }

    /// (object as SHOW GRANTS names it without quotes, privileges) for each GRANT statement.
    fn grants(self, database: &str) -> Vec<(String, &'static [&'static str])> {
        let table = format!("{database}.event_store");
        match self {
            Role::Reader => vec![(table, &["SELECT"])],
            Role::Writer => {
                let mut g: Vec<(String, &'static [&'static str])> = vec![
                    (table, &["INSERT", "SELECT"]),
                    (format!("{database}.{MERGED_POSITION_TABLE}"), &["INSERT", "SELECT"]),
                ];
                for t in PARKING_TABLES {
                    g.push((format!("{database}.{t}"), &["INSERT", "SELECT"]));
                }
                g
            }
            Role::Migrator => {
                let mut g: Vec<(String, &'static [&'static str])> = vec![(
                    format!("{database}.*"),
                    &["ALTER", "CREATE", "DROP", "INDEX", "REFERENCES", "SELECT", "TRIGGER"],
                )];
                // CREATE is part of these grants because MySQL accepts a table-level grant on a
                // table that does not exist yet only when it includes CREATE.
                for t in MIGRATION_TABLES {
                    g.push((format!("{database}.{t}"), &["CREATE", "DELETE", "INSERT", "UPDATE"]));
                }
                for t in ORDER_TABLES {
                    g.push((format!("{database}.{t}"), &["CREATE", "INSERT", "UPDATE"]));
                }
                // The numbering trigger's definer (see the module's documentation).
                g.push((table, &["CREATE", "UPDATE"]));
                g
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> std::result::Result<Role, ConfigError> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| ConfigError::new("role", format!("{s:?} is not one of migrator, writer, reader")))
    }
}

/// One privilege on one object: `object` is `db.*`, `db.table` or `*.*`, without quotes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Privilege {
    /// What it applies to.
    pub object: String,
    /// The privilege, upper case (`SELECT`, `INSERT` …, `GRANT OPTION`).
    pub privilege: String,
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ON {}", self.privilege, self.object)
    }
}

/// A MySQL account, `'user'@'host'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    user: String,
    host: String,
}

impl Account {
    /// An account; user and host may hold letters, digits, `_`, `.`, `-` and (host) `%`.
    pub fn new(user: &str, host: &str) -> std::result::Result<Account, ConfigError> {
        check_account_part("user", user)?;
        check_account_part("host", host)?;
        Ok(Account { user: user.to_string(), host: host.to_string() })
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'@'{}'", self.user, self.host)
    }
}

/// Characters allowed in a MySQL account name or host.
fn check_account_part(what: &str, v: &str) -> std::result::Result<(), ConfigError> {
    if v.is_empty() || v.len() > 255 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_.-%@".contains(c)) {
        return Err(ConfigError::new(
            what,
            format!("{v:?} may only contain letters, digits, '_', '.', '-', '@', '%' (at most 255)"),
        ));
    }
    Ok(())
}

fn check_database(database: &str) -> std::result::Result<(), ConfigError> {
    if database.is_empty() || !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
        return Err(ConfigError::new("database", format!("{database:?} is not a plain database name")));
    }
    Ok(())
}

/// Quotes a string literal for MySQL and MariaDB (both escaping styles neutralised).
fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// Quotes `db.*` / `db.table` as a GRANT names it.
fn quote_object(object: &str) -> String {
    object
        .split('.')
        .map(|p| if p == "*" { p.to_string() } else { format!("`{p}`") })
        .collect::<Vec<_>>()
        .join(".")
}

/// The statements that give `account` exactly `role` on `database`, in order: create the
/// account when `password` is given (an existing account keeps its password), revoke every
/// privilege and `GRANT OPTION`, grant the role's privileges. Granted roles and proxy grants are
/// revoked too, by [`EventStore::apply_role`], from what `SHOW GRANTS` lists.
pub fn role_sql(
    database: &str,
    account: &Account,
    role: Role,
    password: Option<&str>,
) -> std::result::Result<Vec<String>, ConfigError> {
    check_database(database)?;
    let mut sql = Vec::new();
    if let Some(password) = password {
        sql.push(format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {}", quote_literal(password)));
    }
    sql.push(format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"));
    for (object, privileges) in role.grants(database) {
        sql.push(format!("GRANT {} ON {} TO {account}", privileges.join(", "), quote_object(&object)));
    }
    Ok(sql)
}

impl EventStore {
    /// `SHOW GRANTS FOR account`. An account that does not exist is a [`ConfigError`].
    pub async fn show_grants(&self, account: &Account) -> Result<Vec<String>> {
        let rows: std::result::Result<Vec<String>, sqlx::Error> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW GRANTS FOR {account}")))
                .fetch_all(self.pool())
                .await;
        match rows {
            Ok(rows) => Ok(rows),
            // 1141: "There is no such grant defined for user …" — the account does not exist.
            Err(sqlx::Error::Database(e))
                if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|m| m.number() == 1141) =>
            {
                Err(Error::Config(ConfigError::new(
                    "user",
                    format!("the account {account} does not exist; give a password to create it"),
                )))
            }
            Err(e) => Err(db_error(format!("reading the grants of {account}"), e)),
        }
    }

    /// Compares `account`'s grants with `role` on `database` (reads only).
    pub async fn check_role(&self, database: &str, account: &Account, role: Role) -> Result<GrantCheck> {
        check_database(database)?;
        Ok(check_grants(&self.show_grants(account).await?, database, role))
    }

    /// Makes `account`'s grants exactly `role`'s on `database`, creating the account with
    /// `password` when it does not exist (without a password, it must exist: a Cloud SQL IAM
    /// user is created by Terraform, and an existing account keeps its password). Revokes
    /// everything else — privileges, `GRANT OPTION`, proxy grants, granted roles — then grants
    /// the role and verifies `SHOW GRANTS`; returns the comparison (always exact on `Ok`).
    pub async fn apply_role(
        &self,
        database: &str,
        account: &Account,
        role: Role,
        password: Option<&str>,
    ) -> Result<GrantCheck> {
        let sql = role_sql(database, account, role, password)?;
        let (create, rest) = sql.split_at(usize::from(password.is_some()));
        for statement in create {
            self.run_admin(statement, account).await?;
        }
        let mut revoked_roles = false;
        for line in self.show_grants(account).await? {
            match parse_grant(&line) {
                Some(GrantLine::Proxy(p)) => {
                    self.run_admin(&format!("REVOKE {p} FROM {account}"), account).await?
                }
                Some(GrantLine::Roles(r)) => {
                    self.run_admin(&format!("REVOKE {r} FROM {account}"), account).await?;
                    revoked_roles = true;
                }
                _ => {}
            }
        }
        if revoked_roles {
            // The account must not activate a role at login either (MySQL 8 and MariaDB differ
            // in one word).
            let mariadb = self.server_version().await?.to_ascii_lowercase().contains("mariadb");
            let to = if mariadb { "FOR" } else { "TO" };
            self.run_admin(&format!("SET DEFAULT ROLE NONE {to} {account}"), account).await?;
        }
        for statement in rest {
            self.run_admin(statement, account).await?;
        }
        let check = self.check_role(database, account, role).await?;
        if !check.is_exact() {
            return Err(db_error(
                format!("setting the grants of {account} to the {role} role"),
                sqlx::Error::Protocol(format!(
                    "after granting, the account still holds {:?} and lacks {:?}",
                    check.extra,
                    check.missing.iter().map(|p| p.to_string()).collect::<Vec<_>>()
                )),
            ));
        }
        Ok(check)
    }

    async fn run_admin(&self, statement: &str, account: &Account) -> Result<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(self.pool())
            .await
            .map(drop)
            .map_err(|e| db_error(format!("setting the grants of {account}"), e))
    }

    async fn server_version(&self) -> Result<String> {
        sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(self.pool())
            .await
            .map_err(|e| db_error("reading the server version".to_string(), e))
    }

    /// Creates (if absent) the worker's account and gives it exactly the [`Role::Writer`] role.
    #[deprecated(since = "0.2.0", note = "use EventStore::apply_role with Role::Writer")]
    pub async fn create_worker_user(
        &self,
        database: &str,
        user: &str,
        host: &str,
        password: &str,
    ) -> Result<()> {
        self.apply_role(database, &Account::new(user, host)?, Role::Writer, Some(password)).await.map(drop)
    }
}

/// The statements that create the worker's database account.
#[deprecated(since = "0.2.0", note = "use role_sql with Role::Writer")]
pub fn worker_user_sql(
    database: &str,
    user: &str,
    host: &str,
    password: &str,
) -> std::result::Result<Vec<String>, ConfigError> {
    role_sql(database, &Account::new(user, host)?, Role::Writer, Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_role_is_granted_exactly_its_privileges_after_everything_is_revoked() {
        let a = Account::new("suitex_worker", "%").unwrap();
        let sql = role_sql("events", &a, Role::Writer, Some("pa'ss\\word")).unwrap();
        assert_eq!(
            sql,
            [
                r"CREATE USER IF NOT EXISTS 'suitex_worker'@'%' IDENTIFIED BY 'pa''ss\\word'",
                "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'suitex_worker'@'%'",
                "GRANT INSERT, SELECT ON `events`.`event_store` TO 'suitex_worker'@'%'",
                "GRANT INSERT, SELECT ON `events`.`event_store_merged_position` TO 'suitex_worker'@'%'",
                "GRANT INSERT, SELECT ON `events`.`event_store_parking` TO 'suitex_worker'@'%'",
                "GRANT INSERT, SELECT ON `events`.`event_store_parked_events` TO 'suitex_worker'@'%'",
            ]
        );
        let reader = role_sql("events", &a, Role::Reader, None).unwrap();
        assert_eq!(reader[1], "GRANT SELECT ON `events`.`event_store` TO 'suitex_worker'@'%'");
        let migrator = role_sql("events", &a, Role::Migrator, None).unwrap();
        assert_eq!(
            migrator[1],
            "GRANT ALTER, CREATE, DROP, INDEX, REFERENCES, SELECT, TRIGGER ON `events`.* TO 'suitex_worker'@'%'"
        );
        assert_eq!(
            migrator[2],
            "GRANT CREATE, DELETE, INSERT, UPDATE ON `events`.`_sqlx_migrations` TO 'suitex_worker'@'%'"
        );
        for role in Role::ALL {
            let all = role_sql("events", &a, role, None).unwrap().join(";");
            assert!(!all.contains("DELETE ON `events`.`event_store`"), "{role}: {all}");
            // Only the migrator, as the numbering trigger's definer (the trigger refuses UPDATE
            // statements to everyone).
            assert_eq!(
                all.contains("UPDATE ON `events`.`event_store`"),
                role == Role::Migrator,
                "{role}: {all}"
            );
        }
    }

    #[test]
    fn account_and_database_names_cannot_inject_sql() {
        assert!(Account::new("x'; DROP", "%").is_err());
        assert!(Account::new("ok", "").is_err());
        let a = Account::new("ok", "10.0.%").unwrap();
        assert!(role_sql("db`; DROP", &a, Role::Reader, None).unwrap_err().to_string().contains("database"));
        assert_eq!("writer".parse::<Role>().unwrap(), Role::Writer);
        assert!("admin".parse::<Role>().unwrap_err().to_string().contains("migrator, writer, reader"));
    }

    #[test]
    fn exact_grants_pass_in_both_servers_dialects() {
        let mariadb = lines(&[
            "GRANT USAGE ON *.* TO `w`@`%` IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'",
            "GRANT SELECT, INSERT ON `events`.`event_store` TO `w`@`%`",
            "GRANT SELECT, INSERT ON `events`.`event_store_merged_position` TO `w`@`%`",
            "GRANT SELECT, INSERT ON `events`.`event_store_parking` TO `w`@`%`",
            "GRANT SELECT, INSERT ON `events`.`event_store_parked_events` TO `w`@`%`",
        ]);
        assert!(check_grants(&mariadb, "events", Role::Writer).is_exact());
        let mysql8 = lines(&[
            "GRANT USAGE ON *.* TO `w`@`%`",
            "GRANT INSERT, SELECT ON `events`.`event_store` TO `w`@`%`",
            "GRANT INSERT, SELECT ON `events`.`event_store_merged_position` TO `w`@`%`",
            "GRANT INSERT, SELECT ON `events`.`event_store_parking` TO `w`@`%`",
            "GRANT INSERT, SELECT ON `events`.`event_store_parked_events` TO `w`@`%`",
        ]);
        assert!(check_grants(&mysql8, "events", Role::Writer).is_exact());
    }

    #[test]
    fn anything_beyond_the_role_is_reported() {
        let cloud_sql = lines(&[
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD ON *.* TO `w`@`%` WITH GRANT OPTION",
            "GRANT APPLICATION_PASSWORD_ADMIN,AUDIT_ADMIN ON *.* TO `w`@`%`",
            "GRANT SELECT, INSERT, UPDATE (`payload`) ON `events`.`event_store` TO `w`@`%`",
            "GRANT PROXY ON ``@`` TO `w`@`%`",
            "GRANT `cloudsqlsuperuser`@`%` TO `w`@`%`",
        ]);
        let check = check_grants(&cloud_sql, "events", Role::Reader);
        assert!(!check.is_exact());
        for expected in [
            "UPDATE ON *.*",
            "DELETE ON *.*",
            "GRANT OPTION ON *.*",
            "APPLICATION_PASSWORD_ADMIN ON *.*",
            "AUDIT_ADMIN ON *.*",
            "INSERT ON events.event_store",
            "UPDATE (`PAYLOAD`) ON events.event_store",
            "PROXY ON ``@``",
            "role `cloudsqlsuperuser`@`%`",
        ] {
            assert!(check.extra.iter().any(|e| e == expected), "{expected} missing from {:?}", check.extra);
        }
        assert!(!check.extra.iter().any(|e| e == "SELECT ON events.event_store"), "{:?}", check.extra);
        assert!(check.missing.is_empty());

        let none = lines(&["GRANT USAGE ON *.* TO `w`@`%`"]);
        let check = check_grants(&none, "events", Role::Writer);
        assert_eq!(check.missing.len(), 8, "{check:?}");
        assert!(!check.is_exact());
    }
}
