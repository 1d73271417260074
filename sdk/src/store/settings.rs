//! Where the event store is and how to reach it (docs/architecture.md §2.3): the same `DB_EVENT_STORE_*`
//! variables as Laravel's `event_store` connection, TLS included. They are read in
//! [`crate::settings`] with every other setting.

use crate::error::ConfigError;
use crate::settings::{Pairs, Source};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

/// Where the event store is and how to reach it. Its `Debug` form never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `DB_EVENT_STORE_HOST`.
    pub host: String,
    /// `DB_EVENT_STORE_PORT`.
    pub port: u16,
    /// `DB_EVENT_STORE_DATABASE`.
    pub database: String,
    /// `DB_EVENT_STORE_USERNAME`.
    pub username: String,
    /// `DB_EVENT_STORE_PASSWORD`.
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
    /// `DB_EVENT_STORE_POOL_SIZE`.
    pub pool_size: u32,
    /// `DB_EVENT_STORE_STATEMENT_TIMEOUT`: longest any one statement may take; a
    /// statement that hangs past it is abandoned as a transient failure.
    pub statement_timeout: std::time::Duration,
    /// `DB_EVENT_STORE_CONNECTION_MAX_LIFETIME`: longest a pooled connection is
    /// used before a fresh one replaces it.
    pub connection_max_lifetime: std::time::Duration,
}

/// The default of [`StoreSettings::connection_max_lifetime`]: well inside the hour an IAM
/// database token is valid.
pub const DEFAULT_CONNECTION_MAX_LIFETIME: std::time::Duration =
    crate::settings::DB_CONNECTION_MAX_LIFETIME.default.duration();

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

impl StoreSettings {
    /// Reads the `DB_EVENT_STORE_*` variables.
    pub fn from_env() -> Result<StoreSettings, ConfigError> {
        StoreSettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the `DB_EVENT_STORE_*` settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<StoreSettings, ConfigError> {
        let src = Source::new(&lookup);
        let ssl_mode =
            src.parsed(&crate::settings::DB_SSL_MODE, |v| match v.to_ascii_lowercase().as_str() {
                "preferred" => Ok(SslMode::Preferred),
                "disabled" | "disable" => Ok(SslMode::Disabled),
                "required" | "require" => Ok(SslMode::Required),
                "verify_ca" | "verify-ca" => Ok(SslMode::VerifyCa),
                "verify_identity" | "verify-full" | "verify_identity_full" => Ok(SslMode::VerifyIdentity),
                _ => Err("expected disabled, preferred, required, verify_ca or verify_identity".to_string()),
            })?;
        let allow_plaintext = src
            .parsed(&crate::settings::DB_ALLOW_PLAINTEXT, |v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err("expected true or false".to_string()),
            })?
            .unwrap_or(false);
        let mut s = StoreSettings {
            host: src
                .text(&crate::settings::DB_HOST)
                .unwrap_or_else(|| crate::settings::DB_HOST.default.text().into()),
            port: src
                .parsed(&crate::settings::DB_PORT, |v| {
                    v.parse().map_err(|_| "expected a port number".into())
                })?
                .unwrap_or(crate::settings::DB_PORT.default.count() as u16),
            database: src
                .text(&crate::settings::DB_DATABASE)
                .unwrap_or_else(|| crate::settings::DB_DATABASE.default.text().into()),
            username: src
                .text(&crate::settings::DB_USERNAME)
                .unwrap_or_else(|| crate::settings::DB_USERNAME.default.text().into()),
            password: src.verbatim(&crate::settings::DB_PASSWORD).unwrap_or_default(),
            password_file: src.text(&crate::settings::DB_PASSWORD_FILE),
            socket: src.text(&crate::settings::DB_SOCKET),
            ssl_mode: ssl_mode.unwrap_or(SslMode::Preferred),
            ssl_ca: src.text(&crate::settings::DB_SSL_CA),
            ssl_cert: src.text(&crate::settings::DB_SSL_CERT),
            ssl_key: src.text(&crate::settings::DB_SSL_KEY),
            pool_size: src
                .positive(&crate::settings::DB_POOL_SIZE)?
                .unwrap_or(crate::settings::DB_POOL_SIZE.default.count() as u32),
            statement_timeout: src
                .duration(&crate::settings::DB_STATEMENT_TIMEOUT)?
                .unwrap_or(crate::settings::DB_STATEMENT_TIMEOUT.default.duration()),
            connection_max_lifetime: src
                .duration(&crate::settings::DB_CONNECTION_MAX_LIFETIME)?
                .unwrap_or(crate::store::DEFAULT_CONNECTION_MAX_LIFETIME),
        };
        // TLS fails closed: without a mode, a CA means verify it, and anything but a local
        // connection means TLS required. Plain text is only ever chosen for a connection that
        // stays on this machine (a Unix socket or a loopback address: the Cloud SQL Auth Proxy,
        // which does TLS itself, or a development database).
        s.ssl_mode = match ssl_mode {
            Some(mode) => mode,
            None if s.ssl_ca.is_some() => SslMode::VerifyCa,
            None if s.is_local() => SslMode::Preferred,
            None => SslMode::Required,
        };
        if matches!(s.ssl_mode, SslMode::Disabled | SslMode::Preferred) && !s.is_local() && !allow_plaintext {
            return Err(ConfigError::new(
                crate::settings::DB_SSL_MODE.name,
                format!(
                    "is {} towards {}, which may send the account's credentials and the events in plain text over the network; \
                     use required or verify_ca (with DB_EVENT_STORE_SSL_CA), connect through the Cloud SQL Auth Proxy on 127.0.0.1, \
                     or, for a development database only, set {}=true",
                    s.ssl_mode.as_str(),
                    s.host,
                    crate::settings::DB_ALLOW_PLAINTEXT.name
                ),
            ));
        }
        if s.connection_max_lifetime.is_zero() {
            return Err(ConfigError::new(
                crate::settings::DB_CONNECTION_MAX_LIFETIME.name,
                "must be greater than zero",
            ));
        }
        if s.statement_timeout.is_zero() {
            return Err(ConfigError::new(
                crate::settings::DB_STATEMENT_TIMEOUT.name,
                "must be greater than zero",
            ));
        }
        if matches!(s.ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && s.ssl_ca.is_none() {
            return Err(ConfigError::new(
                crate::settings::DB_SSL_CA.name,
                "is not set, but DB_EVENT_STORE_SSL_MODE asks to verify the server certificate",
            ));
        }
        if s.ssl_cert.is_some() != s.ssl_key.is_some() {
            return Err(ConfigError::new(
                "DB_EVENT_STORE_SSL_CERT / DB_EVENT_STORE_SSL_KEY",
                "must be given together (client certificate and its key)",
            ));
        }
        Ok(s)
    }

    /// The settings that [`StoreSettings::from_lookup`] reads back into these same settings (for
    /// a child process's environment).
    pub fn to_settings(&self) -> Pairs {
        let mut out: Pairs = vec![
            (crate::settings::DB_HOST.name, self.host.clone()),
            (crate::settings::DB_PORT.name, self.port.to_string()),
            (crate::settings::DB_DATABASE.name, self.database.clone()),
            (crate::settings::DB_USERNAME.name, self.username.clone()),
            (crate::settings::DB_PASSWORD.name, self.password.clone()),
            (crate::settings::DB_SSL_MODE.name, self.ssl_mode.as_str().to_string()),
            (crate::settings::DB_POOL_SIZE.name, self.pool_size.to_string()),
            (crate::settings::DB_STATEMENT_TIMEOUT.name, format!("{}ms", self.statement_timeout.as_millis())),
            (
                crate::settings::DB_CONNECTION_MAX_LIFETIME.name,
                format!("{}ms", self.connection_max_lifetime.as_millis()),
            ),
        ];
        for (setting, value) in [
            (&crate::settings::DB_SOCKET, &self.socket),
            (&crate::settings::DB_PASSWORD_FILE, &self.password_file),
            (&crate::settings::DB_SSL_CA, &self.ssl_ca),
            (&crate::settings::DB_SSL_CERT, &self.ssl_cert),
            (&crate::settings::DB_SSL_KEY, &self.ssl_key),
        ] {
            if let Some(v) = value {
                out.push((setting.name, v.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{SslMode, StoreSettings};

    #[test]
    fn settings_follow_laravel_variables() {
        let s = StoreSettings::from_lookup(|k| match k {
            "DB_EVENT_STORE_HOST" => Some("10.0.0.5".into()),
            "DB_EVENT_STORE_PORT" => Some("3307".into()),
            "DB_EVENT_STORE_DATABASE" => Some("events".into()),
            "DB_EVENT_STORE_USERNAME" => Some("worker".into()),
            "DB_EVENT_STORE_PASSWORD" => Some(" s3cret ".into()),
            "DB_EVENT_STORE_SSL_MODE" => Some("verify_ca".into()),
            "DB_EVENT_STORE_SSL_CA" => Some("/etc/ssl/server-ca.pem".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.describe(), "10.0.0.5:3307/events");
        assert_eq!(s.username, "worker");
        assert_eq!(s.password, " s3cret ", "passwords are taken verbatim");
        assert_eq!(s.ssl_mode, SslMode::VerifyCa);
        assert_eq!(s.ssl_ca.as_deref(), Some("/etc/ssl/server-ca.pem"));
    }

    #[test]
    fn to_settings_reads_back_into_the_same_settings() {
        let s = StoreSettings::from_lookup(|k| match k {
            "DB_EVENT_STORE_SOCKET" => Some("/run/cloudsql/x".into()),
            "DB_EVENT_STORE_PASSWORD" => Some(" p ".into()),
            "DB_EVENT_STORE_SSL_MODE" => Some("required".into()),
            _ => None,
        })
        .unwrap();
        let pairs: std::collections::HashMap<&str, String> = s.to_settings().into_iter().collect();
        assert_eq!(StoreSettings::from_lookup(|k| pairs.get(k).cloned()).unwrap(), s);
    }

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn tls_defaults_fail_closed() {
        let mode = |pairs: &[(&str, &str)]| StoreSettings::from_lookup(lookup(pairs)).map(|s| s.ssl_mode);
        let remote = ("DB_EVENT_STORE_HOST", "10.20.0.3");
        // A CA means: verify it, wherever the server is.
        assert_eq!(mode(&[remote, ("DB_EVENT_STORE_SSL_CA", "/etc/ssl/ca.pem")]).unwrap(), SslMode::VerifyCa);
        assert_eq!(mode(&[("DB_EVENT_STORE_SSL_CA", "/etc/ssl/ca.pem")]).unwrap(), SslMode::VerifyCa);
        // A remote server without a CA: TLS required, never plain text.
        assert_eq!(mode(&[remote]).unwrap(), SslMode::Required);
        assert_eq!(mode(&[("DB_EVENT_STORE_HOST", "db.internal")]).unwrap(), SslMode::Required);
        // Local connections (a development database, the Auth Proxy): TLS if offered.
        for local in ["127.0.0.1", "localhost", "::1", "127.0.0.53"] {
            assert_eq!(mode(&[("DB_EVENT_STORE_HOST", local)]).unwrap(), SslMode::Preferred, "{local}");
        }
        assert_eq!(
            mode(&[remote, ("DB_EVENT_STORE_SOCKET", "/cloudsql/p:r:i")]).unwrap(),
            SslMode::Preferred
        );
        // Asking for plain text towards the network is refused, naming the setting.
        for weak in ["disabled", "preferred"] {
            let e = mode(&[remote, ("DB_EVENT_STORE_SSL_MODE", weak)]).unwrap_err();
            assert_eq!(e.setting(), "DB_EVENT_STORE_SSL_MODE");
            assert!(e.to_string().contains("plain text") && e.to_string().contains("10.20.0.3"), "{e}");
            assert!(mode(&[("DB_EVENT_STORE_SSL_MODE", weak)]).is_ok(), "{weak} on the loopback is allowed");
        }
        // …unless a development setup says so explicitly.
        let dev = mode(&[
            remote,
            ("DB_EVENT_STORE_SSL_MODE", "disabled"),
            ("DB_EVENT_STORE_ALLOW_PLAINTEXT", "true"),
        ]);
        assert_eq!(dev.unwrap(), SslMode::Disabled);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s =
            StoreSettings::from_lookup(|k| (k == "DB_EVENT_STORE_PASSWORD").then(|| "hunter2-secret".into()))
                .unwrap();
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
    }

    #[test]
    fn verifying_tls_without_a_ca_is_refused() {
        let e = StoreSettings::from_lookup(|k| {
            (k == "DB_EVENT_STORE_SSL_MODE").then(|| "verify_identity".into())
        })
        .unwrap_err();
        assert_eq!(e.setting(), "DB_EVENT_STORE_SSL_CA");
        let e = StoreSettings::from_lookup(|k| (k == "DB_EVENT_STORE_SSL_MODE").then(|| "sometimes".into()))
            .unwrap_err();
        assert_eq!(e.setting(), "DB_EVENT_STORE_SSL_MODE");
        let e = StoreSettings::from_lookup(|k| (k == "DB_EVENT_STORE_POOL_SIZE").then(|| "0".into()))
            .unwrap_err();
        assert_eq!(e.setting(), "DB_EVENT_STORE_POOL_SIZE");
    }
}
