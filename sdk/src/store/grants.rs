//! Database accounts: the worker's account gets INSERT and SELECT on `event_store` and nothing
//! else (DESIGN §3.2a).

use super::EventStore;
use super::event_store::db_error;
use crate::error::{ConfigError, Result};

/// Characters allowed in a MySQL account name or host for [`worker_user_sql`].
fn check_account_part(what: &str, v: &str) -> std::result::Result<(), ConfigError> {
    if v.is_empty() || v.len() > 255 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_.-%".contains(c)) {
        return Err(ConfigError::new(
            what,
            format!("{v:?} may only contain letters, digits, '_', '.', '-', '%'"),
        ));
    }
    Ok(())
}

/// Quotes a string literal for MySQL and MariaDB (both escaping styles neutralised).
fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// The statements that create the worker's database account: INSERT and SELECT on
/// `event_store`, nothing else (no UPDATE, DELETE, DROP, ALTER or TRUNCATE).
pub fn worker_user_sql(
    database: &str,
    user: &str,
    host: &str,
    password: &str,
) -> std::result::Result<Vec<String>, ConfigError> {
    check_account_part("user", user)?;
    check_account_part("host", host)?;
    if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
        return Err(ConfigError::new("database", format!("{database:?} is not a plain database name")));
    }
    Ok(vec![
        format!("CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY {}", quote_literal(password)),
        format!("GRANT INSERT, SELECT ON `{database}`.`event_store` TO '{user}'@'{host}'"),
    ])
}

impl EventStore {
    /// Creates (if absent) the worker's account with INSERT and SELECT on `event_store` only.
    pub async fn create_worker_user(
        &self,
        database: &str,
        user: &str,
        host: &str,
        password: &str,
    ) -> Result<()> {
        for sql in worker_user_sql(database, user, host, password)? {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(self.pool())
                .await
                .map_err(|e| db_error(format!("creating the worker account {user}@{host}"), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_user_gets_insert_and_select_only() {
        let sql = worker_user_sql("event_store", "suitex_worker", "%", "pa'ss\\word").unwrap();
        assert_eq!(sql[0], r"CREATE USER IF NOT EXISTS 'suitex_worker'@'%' IDENTIFIED BY 'pa''ss\\word'");
        assert_eq!(sql[1], "GRANT INSERT, SELECT ON `event_store`.`event_store` TO 'suitex_worker'@'%'");
        assert!(worker_user_sql("event_store", "x'; DROP", "%", "p").is_err());
    }
}
