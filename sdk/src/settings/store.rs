//! [`StoreSettings`] from the `DB_EVENT_STORE_*` variables.

use super::{Pairs, Source};
use crate::error::ConfigError;
use crate::store::{SslMode, StoreSettings};

impl StoreSettings {
    /// Reads the `DB_EVENT_STORE_*` variables.
    pub fn from_env() -> Result<StoreSettings, ConfigError> {
        StoreSettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the `DB_EVENT_STORE_*` settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<StoreSettings, ConfigError> {
        let src = Source::new(&lookup);
        let ssl_mode = src.parsed(&super::DB_SSL_MODE, |v| match v.to_ascii_lowercase().as_str() {
            "preferred" => Ok(SslMode::Preferred),
            "disabled" | "disable" => Ok(SslMode::Disabled),
            "required" | "require" => Ok(SslMode::Required),
            "verify_ca" | "verify-ca" => Ok(SslMode::VerifyCa),
            "verify_identity" | "verify-full" | "verify_identity_full" => Ok(SslMode::VerifyIdentity),
            _ => Err("expected disabled, preferred, required, verify_ca or verify_identity".to_string()),
        })?;
        let allow_plaintext = src
            .parsed(&super::DB_ALLOW_PLAINTEXT, |v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err("expected true or false".to_string()),
            })?
            .unwrap_or(false);
        let mut s = StoreSettings {
            host: src.text(&super::DB_HOST).unwrap_or_else(|| "127.0.0.1".into()),
            port: src
                .parsed(&super::DB_PORT, |v| v.parse().map_err(|_| "expected a port number".into()))?
                .unwrap_or(3306),
            database: src.text(&super::DB_DATABASE).unwrap_or_else(|| "event_store".into()),
            username: src.text(&super::DB_USERNAME).unwrap_or_else(|| "root".into()),
            password: src.verbatim(&super::DB_PASSWORD).unwrap_or_default(),
            password_file: src.text(&super::DB_PASSWORD_FILE),
            socket: src.text(&super::DB_SOCKET),
            ssl_mode: ssl_mode.unwrap_or(SslMode::Preferred),
            ssl_ca: src.text(&super::DB_SSL_CA),
            ssl_cert: src.text(&super::DB_SSL_CERT),
            ssl_key: src.text(&super::DB_SSL_KEY),
            pool_size: src.positive(&super::DB_POOL_SIZE)?.unwrap_or(4),
            statement_timeout: src
                .duration(&super::DB_STATEMENT_TIMEOUT)?
                .unwrap_or(std::time::Duration::from_secs(30)),
            connection_max_lifetime: src
                .duration(&super::DB_CONNECTION_MAX_LIFETIME)?
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
                super::DB_SSL_MODE.name,
                format!(
                    "is {} towards {}, which may send the account's credentials and the events in plain text over the network; \
                     use required or verify_ca (with DB_EVENT_STORE_SSL_CA), connect through the Cloud SQL Auth Proxy on 127.0.0.1, \
                     or, for a development database only, set {}=true",
                    s.ssl_mode.as_str(),
                    s.host,
                    super::DB_ALLOW_PLAINTEXT.name
                ),
            ));
        }
        if s.connection_max_lifetime.is_zero() {
            return Err(ConfigError::new(
                super::DB_CONNECTION_MAX_LIFETIME.name,
                "must be greater than zero",
            ));
        }
        if s.statement_timeout.is_zero() {
            return Err(ConfigError::new(super::DB_STATEMENT_TIMEOUT.name, "must be greater than zero"));
        }
        if matches!(s.ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && s.ssl_ca.is_none() {
            return Err(ConfigError::new(
                super::DB_SSL_CA.name,
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
            (super::DB_HOST.name, self.host.clone()),
            (super::DB_PORT.name, self.port.to_string()),
            (super::DB_DATABASE.name, self.database.clone()),
            (super::DB_USERNAME.name, self.username.clone()),
            (super::DB_PASSWORD.name, self.password.clone()),
            (super::DB_SSL_MODE.name, self.ssl_mode.as_str().to_string()),
            (super::DB_POOL_SIZE.name, self.pool_size.to_string()),
            (super::DB_STATEMENT_TIMEOUT.name, format!("{}ms", self.statement_timeout.as_millis())),
            (
                super::DB_CONNECTION_MAX_LIFETIME.name,
                format!("{}ms", self.connection_max_lifetime.as_millis()),
            ),
        ];
        for (setting, value) in [
            (&super::DB_SOCKET, &self.socket),
            (&super::DB_PASSWORD_FILE, &self.password_file),
            (&super::DB_SSL_CA, &self.ssl_ca),
            (&super::DB_SSL_CERT, &self.ssl_cert),
            (&super::DB_SSL_KEY, &self.ssl_key),
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
