//! Which database errors are about a row, which are about the connection that saw them, and
//! which are about everything else.
//!
//! The rule is inverted on purpose: a row is poison only for an error that is about *that row's
//! data*, listed below one by one. Every other error — and every error of a kind not listed —
//! is a failure of the database for the whole batch, which is retried and never dead-letters a
//! healthy event: a rotated password, a revoked grant, a missing table, a full disk, a killed
//! query or a blocked host says nothing about the event being written.
//!
//! Some of those failures are also *about the session*: a revoked database-level grant reaches
//! an open connection only at its next `USE` (a global one only on a new connection), a killed
//! or lost session is gone, an old primary stays read-only, a password or IAM token is checked
//! only when a connection is opened. After an error listed in [`CONNECTION_SCOPED`] (or a
//! driver-level failure: I/O, TLS, protocol, a statement past its timeout) the store never
//! reuses a connection opened before it (docs/architecture.md §2.3); `php artisan events:work`
//! reconnects on the same list (a test compares them).

/// How an error of the event store is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The row's own data is refused: that event is poison (after the checks in
    /// [`EventStore::append`](super::EventStore::append) that the table itself accepts rows).
    RowData,
    /// The `event_id` is stored already (1062): look it up and compare.
    Duplicate,
    /// InnoDB chose this statement as a deadlock victim (1213): run it again.
    Deadlock,
    /// Anything else: the database, the account or the connection is at fault, for the batch.
    Transient,
}

/// MySQL / MariaDB error numbers that are about the row being written.
const ROW_DATA: [(u16, &str); 17] = [
    (1048, "ER_BAD_NULL_ERROR: a NOT NULL column got NULL"),
    (1153, "ER_NET_PACKET_TOO_LARGE: the row does not fit max_allowed_packet"),
    (1264, "ER_WARN_DATA_OUT_OF_RANGE: a number out of its column's range (strict mode)"),
    (1265, "WARN_DATA_TRUNCATED: a value truncated to fit its column (strict mode)"),
    (1292, "ER_TRUNCATED_WRONG_VALUE: e.g. an invalid DATETIME"),
    (1300, "ER_INVALID_CHARACTER_STRING: bytes that are not valid in the column's charset"),
    (1366, "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: e.g. a string that is not valid utf8mb4"),
    (1367, "ER_ILLEGAL_VALUE_FOR_TYPE: a value the column's type cannot parse"),
    (1406, "ER_DATA_TOO_LONG: a string longer than its column"),
    (1411, "ER_WRONG_VALUE_FOR_TYPE: a value a conversion function refuses"),
    (1690, "ER_DATA_OUT_OF_RANGE: a computed value out of range"),
    (3140, "ER_INVALID_JSON_TEXT (MySQL 8): payload or metadata is not valid JSON"),
    (3141, "ER_INVALID_JSON_TEXT_IN_PARAM (MySQL 8): the same, in a function argument"),
    (3146, "ER_INVALID_TYPE_FOR_JSON (MySQL 8): a value that cannot be a JSON document"),
    (3157, "ER_JSON_DOCUMENT_TOO_DEEP (MySQL 8): nested deeper than 100 levels"),
    (3819, "ER_CHECK_CONSTRAINT_VIOLATED (MySQL 8): the row fails a CHECK constraint"),
    (4025, "ER_CONSTRAINT_FAILED (MariaDB): the row fails a CHECK, e.g. json_valid() on a JSON column"),
];

/// MySQL / MariaDB error numbers after which no connection opened before them is used again,
/// with the class an operator sees (`suitex_worker_store_failure` metric, `/readyz`).
pub const CONNECTION_SCOPED: [(u16, FailureClass, &str); 20] = [
    (1044, FailureClass::Access, "ER_DBACCESS_DENIED_ERROR: access to the database denied"),
    (
        1142,
        FailureClass::Access,
        "ER_TABLEACCESS_DENIED_ERROR: a command denied on a table (a revoked INSERT)",
    ),
    (1143, FailureClass::Access, "ER_COLUMNACCESS_DENIED_ERROR: a command denied on a column"),
    (
        1227,
        FailureClass::Access,
        "ER_SPECIFIC_ACCESS_DENIED_ERROR: a privilege the statement needs is missing",
    ),
    (1045, FailureClass::Authentication, "ER_ACCESS_DENIED_ERROR: the account or its password was refused"),
    (1698, FailureClass::Authentication, "ER_ACCESS_DENIED_NO_PASSWORD_ERROR: refused without a password"),
    (1820, FailureClass::Authentication, "ER_MUST_CHANGE_PASSWORD: the password has expired"),
    (1862, FailureClass::Authentication, "ER_MUST_CHANGE_PASSWORD_LOGIN: the password expired at login"),
    (
        1290,
        FailureClass::ReadOnly,
        "ER_OPTION_PREVENTS_STATEMENT: --read-only (an old primary after a failover)",
    ),
    (1836, FailureClass::ReadOnly, "ER_READ_ONLY_MODE: the server is read-only"),
    (1792, FailureClass::ReadOnly, "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: a read-only transaction"),
    (1040, FailureClass::ConnectionLimit, "ER_CON_COUNT_ERROR: max_connections reached"),
    (
        1203,
        FailureClass::ConnectionLimit,
        "ER_TOO_MANY_USER_CONNECTIONS: the account's max_user_connections reached",
    ),
    (1226, FailureClass::ConnectionLimit, "ER_USER_LIMIT_REACHED: an account resource limit reached"),
    (1053, FailureClass::ConnectionLost, "ER_SERVER_SHUTDOWN: the server is shutting down"),
    (1317, FailureClass::ConnectionLost, "ER_QUERY_INTERRUPTED: the statement was killed"),
    (1927, FailureClass::ConnectionLost, "ER_CONNECTION_KILLED (MariaDB): the session was killed"),
    (2006, FailureClass::ConnectionLost, "CR_SERVER_GONE_ERROR: the server has gone away"),
    (2013, FailureClass::ConnectionLost, "CR_SERVER_LOST: the connection was lost during a statement"),
    (
        4031,
        FailureClass::ConnectionLost,
        "ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8): the server closed an idle session",
    ),
];

/// What kind of failure of the database a worker is waiting out, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// A privilege is missing (a revoked grant).
    Access,
    /// The account, its password or its IAM token is refused.
    Authentication,
    /// The server is read-only (an old primary during a failover).
    ReadOnly,
    /// The server or the account has no connection to spare.
    ConnectionLimit,
    /// The session was killed or lost, a statement passed its timeout, or no connection could
    /// be opened in time.
    ConnectionLost,
    /// Anything else about the database (a missing table, a full disk …).
    Database,
    /// Not the database: Cloud Storage or Pub/Sub.
    Service,
}

impl FailureClass {
    /// Every class, in the order of the metric's labels.
    pub const ALL: [FailureClass; 7] = [
        FailureClass::Access,
        FailureClass::Authentication,
        FailureClass::ReadOnly,
        FailureClass::ConnectionLimit,
        FailureClass::ConnectionLost,
        FailureClass::Database,
        FailureClass::Service,
    ];

    /// The class's name in metrics and logs (`access`, `read_only` …).
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Access => "access",
            FailureClass::Authentication => "authentication",
            FailureClass::ReadOnly => "read_only",
            FailureClass::ConnectionLimit => "connection_limit",
            FailureClass::ConnectionLost => "connection_lost",
            FailureClass::Database => "database",
            FailureClass::Service => "service",
        }
    }
}

/// The class of a database failure, and whether the connection that saw it may be used again
/// (`false`: every connection opened before it is retired).
pub fn failure_class(e: &sqlx::Error) -> (FailureClass, bool) {
    match e {
        sqlx::Error::Database(_) => match mysql_code(e).and_then(connection_scoped) {
            Some(class) => (class, false),
            None => (FailureClass::Database, true),
        },
        // The driver lost the session (I/O, TLS, protocol), or a statement passed its timeout
        // and was abandoned mid-way: that session is not to be trusted again.
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            (FailureClass::ConnectionLost, false)
        }
        // No connection could be had in time: the server refused them (down, restarting) or
        // every one hung.
        sqlx::Error::PoolTimedOut => (FailureClass::ConnectionLost, false),
        _ => (FailureClass::Database, true),
    }
}

/// The class of a failure the SDK reported (for the worker's metrics, logs and `/readyz`).
pub fn failure_class_of(e: &crate::error::Error) -> FailureClass {
    use crate::error::{Error, Service};
    match e {
        Error::Service { service: Service::Database, source, .. } => {
            source.downcast_ref::<sqlx::Error>().map_or(FailureClass::Database, |e| failure_class(e).0)
        }
        Error::DeadlineExceeded { service: Service::Database, .. } => FailureClass::ConnectionLost,
        _ => FailureClass::Service,
    }
}

/// The class of a connection-scoped error number.
pub fn connection_scoped(code: u16) -> Option<FailureClass> {
    CONNECTION_SCOPED.iter().find(|(n, _, _)| *n == code).map(|(_, class, _)| *class)
}

const DUPLICATE_KEY: u16 = 1062;
const DEADLOCK: u16 = 1213;

/// The class of a MySQL / MariaDB error number.
pub fn classify_code(code: u16) -> ErrorClass {
    match code {
        DUPLICATE_KEY => ErrorClass::Duplicate,
        DEADLOCK => ErrorClass::Deadlock,
        c if ROW_DATA.iter().any(|(n, _)| *n == c) => ErrorClass::RowData,
        _ => ErrorClass::Transient,
    }
}

/// The MySQL / MariaDB error number of a database error.
pub(crate) fn mysql_code(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|d| d.number())
}

/// The class of an error from sqlx.
pub(crate) fn classify(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Database(_) => mysql_code(e).map_or(ErrorClass::Transient, classify_code),
        // A value the driver cannot encode for its column is about that row.
        sqlx::Error::Encode(_) => ErrorClass::RowData,
        _ => ErrorClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_is_row_data_and_unknown_codes_are_transient() {
        for (code, _) in ROW_DATA {
            assert_eq!(classify_code(code), ErrorClass::RowData);
        }
        assert_eq!(classify_code(9999), ErrorClass::Transient);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorClass::Transient);
    }

    #[test]
    fn connection_scoped_errors_are_transient_never_row_data() {
        for (code, class, _) in CONNECTION_SCOPED {
            assert_eq!(classify_code(code), ErrorClass::Transient, "{code}");
            assert_eq!(connection_scoped(code), Some(class));
        }
        assert_eq!(connection_scoped(1146), None, "a missing table needs no new connection");
        let lost = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        assert_eq!(failure_class(&lost), (FailureClass::ConnectionLost, false));
        assert_eq!(FailureClass::ReadOnly.name(), "read_only");
    }
}
