//! Where the event store is and how to reach it (docs/architecture.md §2.3): the same `DB_EVENT_STORE_*`
//! variables as Laravel's `event_store` connection, TLS included. They are read in
//! [`crate::settings`] with every other setting.

use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// Where the event store is and how to reach it. Its `Debug` form never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `DB_EVENT_STORE_HOST` (default `127.0.0.1`).
    pub host: String,
    /// `DB_EVENT_STORE_PORT` (default 3306).
    pub port: u16,
    /// `DB_EVENT_STORE_DATABASE` (default `event_store`).
    pub database: String,
    /// `DB_EVENT_STORE_USERNAME` (default `root`, as Laravel's example).
    pub username: String,
    /// `DB_EVENT_STORE_PASSWORD` (default empty).
    pub password: String,
    /// `DB_EVENT_STORE_PASSWORD_FILE`: a file holding the password (wins over `password`), read
    /// again whenever the store renews its connections.
    pub password_file: Option<String>,
    /// `DB_EVENT_STORE_SOCKET`: a Unix socket path (e.g. the Cloud SQL Auth Proxy); wins over host.
    pub socket: Option<String>,
    /// `DB_EVENT_STORE_SSL_MODE`: `disabled`, `preferred`, `required`, `verify_ca`,
    /// `verify_identity`. Unset, it fails closed: `verify_ca` when `DB_EVENT_STORE_SSL_CA` is
    /// given, `preferred` for a local connection (a Unix socket or a loopback address: the
    /// Cloud SQL Auth Proxy or a development database), `required` otherwise. `disabled` and
    /// `preferred` towards any other host are refused unless `DB_EVENT_STORE_ALLOW_PLAINTEXT`.
    pub ssl_mode: SslMode,
    /// `DB_EVENT_STORE_SSL_CA`: CA certificate file (PEM).
    pub ssl_ca: Option<String>,
    /// `DB_EVENT_STORE_SSL_CERT`: client certificate file (PEM).
    pub ssl_cert: Option<String>,
    /// `DB_EVENT_STORE_SSL_KEY`: client key file (PEM).
    pub ssl_key: Option<String>,
    /// `DB_EVENT_STORE_POOL_SIZE` (default 4).
    pub pool_size: u32,
    /// `DB_EVENT_STORE_STATEMENT_TIMEOUT` (default 30s): longest any one statement may take; a
    /// statement that hangs past it is abandoned as a transient failure.
    pub statement_timeout: std::time::Duration,
    /// `DB_EVENT_STORE_CONNECTION_MAX_LIFETIME` (default 15 min): longest a pooled connection is
    /// used before a fresh one replaces it.
    pub connection_max_lifetime: std::time::Duration,
}

/// The default of [`StoreSettings::connection_max_lifetime`]: well inside the hour an IAM
/// database token is valid.
pub const DEFAULT_CONNECTION_MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "********" })
            .field("password_file", &self.password_file)
            .field("socket", &self.socket)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connection_max_lifetime", &self.connection_max_lifetime)
            .finish()
    }
}

/// TLS mode of the database connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text.
    Disabled,
    /// TLS if the server offers it.
    Preferred,
    /// TLS, certificate not checked.
    Required,
    /// TLS, certificate checked against the CA.
    VerifyCa,
    /// TLS, certificate and host name checked.
    VerifyIdentity,
}

impl SslMode {
    /// The setting's value for this mode (`disabled`, `preferred`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

impl StoreSettings {
    /// The same settings for another database on the same server.
    pub fn with_database(mut self, database: impl Into<String>) -> StoreSettings {
        self.database = database.into();
        self
    }

    /// The password: the password file's content (without a final line break) when one is
    /// configured, read now, else `password`.
    pub fn current_password(&self) -> std::io::Result<String> {
        match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("reading DB_EVENT_STORE_PASSWORD_FILE {path}: {e}"))
                })?;
                Ok(text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text)
                    .to_string())
            }
            None => Ok(self.password.clone()),
        }
    }

    /// Connection options (UTC session, utf8mb4, TLS as configured), with the password as
    /// [`StoreSettings::current_password`] reads it now (the configured `password` when the file
    /// cannot be read: the connection attempt then says what is wrong).
    pub fn connect_options(&self) -> MySqlConnectOptions {
        let mut o = MySqlConnectOptions::new().username(&self.username);
        let password = self.current_password().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the password file cannot be read; using DB_EVENT_STORE_PASSWORD");
            self.password.clone()
        });
        if !password.is_empty() {
            o = o.password(&password);
        }
        o = o.database(&self.database).charset("utf8mb4").timezone(Some("+00:00".to_string())).ssl_mode(
            match self.ssl_mode {
                SslMode::Disabled => MySqlSslMode::Disabled,
                SslMode::Preferred => MySqlSslMode::Preferred,
                SslMode::Required => MySqlSslMode::Required,
                SslMode::VerifyCa => MySqlSslMode::VerifyCa,
                SslMode::VerifyIdentity => MySqlSslMode::VerifyIdentity,
            },
        );
        o = match &self.socket {
            Some(path) => o.socket(path),
            None => o.host(&self.host).port(self.port),
        };
        if let Some(ca) = &self.ssl_ca {
            o = o.ssl_ca(ca);
        }
        if let (Some(cert), Some(key)) = (&self.ssl_cert, &self.ssl_key) {
            o = o.ssl_client_cert(cert).ssl_client_key(key);
        }
        o
    }

    /// Whether the connection stays on this machine: a Unix socket or a loopback host.
    pub fn is_local(&self) -> bool {
        self.socket.is_some()
            || self.host.eq_ignore_ascii_case("localhost")
            || self.host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `host:port/database` or `socket/database`, for messages (no credentials).
    pub fn describe(&self) -> String {
        match &self.socket {
            Some(s) => format!("{s}/{}", self.database),
            None => format!("{}:{}/{}", self.host, self.port, self.database),
        }
    }
}
