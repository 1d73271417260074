//! Which database errors are about a row, and which are about everything else.
//!
//! The rule is inverted on purpose: a row is poison only for an error that is about *that row's
//! data*, listed below one by one. Every other error — and every error of a kind not listed —
//! is a failure of the database for the whole batch, which is retried and never dead-letters a
//! healthy event: a rotated password, a revoked grant, a missing table, a full disk, a killed
//! query or a blocked host says nothing about the event being written.

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
}
