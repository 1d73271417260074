//! The SDK's one error type.
//!
//! Every failure a caller can see is an [`Error`]. Callers branch on the `is_*` helpers rather
//! than on variants, so new variants can be added without breaking them. Bindings (PHP, C) map
//! these helpers onto their own exception classes and result codes.

use std::time::Duration;

/// A boxed error from a client library, kept as the [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An input that broke a rule of the event contract.
///
/// `field` names the offending field (`aggregate_id`, `payload`, `events[3].event_type`), and the
/// message says what is wrong with the value and what the limit is, e.g.
/// `aggregate_id is 240 bytes; the limit is 191`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct ValidationError {
    field: String,
    problem: String,
}

impl ValidationError {
    /// `problem` continues the sentence that starts with the field name
    /// (`"is 240 bytes; the limit is 191"`).
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// The field that broke a rule.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it, without the field name.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// Re-roots the field under a parent, e.g. `aggregate_id` → `events[3].aggregate_id`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// A setting that is missing or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {problem}")]
pub struct ConfigError {
    setting: String,
    problem: String,
}

impl ConfigError {
    /// `problem` continues the sentence that starts with the setting name.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { setting: setting.into(), problem: problem.into() }
    }

    /// The setting (environment variable or builder field) at fault.
    pub fn setting(&self) -> &str {
        &self.setting
    }
}

/// Why a message can never be stored as it is: the worker nacks it and Pub/Sub dead-letters it
/// after its last delivery attempt (docs/architecture.md §2.5). Only what is wrong with *that* message is
/// poison; a failure of a service is an [`Error`] and is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Poison {
    /// The message is not a valid envelope (or of an unsupported schema version).
    #[error("bad envelope: {0}")]
    BadEnvelope(ValidationError),
    /// The claim-check cannot be resolved: missing, outside its bucket or account, or its bytes
    /// do not match the reference.
    #[error(transparent)]
    ClaimCheck(InvalidClaimCheck),
    /// The claim-check object holds bytes that are not JSON.
    #[error("claim-check {object} is not JSON: {error}")]
    PayloadNotJson {
        /// Object named by the reference.
        object: String,
        /// The parser's message.
        error: String,
    },
    /// The claim-check object holds a payload the ledger would store altered (a number beyond
    /// what it holds exactly, a duplicate key, too deep: [`crate::envelope::exact`]).
    #[error("claim-check {object} holds a payload the ledger cannot store exactly: {error}")]
    PayloadNotExact {
        /// Object named by the reference.
        object: String,
        /// The broken rule, naming the value's path.
        error: ValidationError,
    },
    /// The payload is still a claim-check reference (it must be resolved before storing).
    #[error("the payload is a claim-check reference; resolve it before storing")]
    Unresolved,
    /// The row is larger than the database accepts in one statement.
    #[error("the row is {size} bytes; the database's max_allowed_packet allows {limit}")]
    RowTooLarge {
        /// The row's size.
        size: usize,
        /// What one statement may hold.
        limit: usize,
    },
    /// The `event_id` is stored already as another event (another tenant, aggregate or event
    /// type, or another payload): an id reused for something else is never acked as a
    /// duplicate, and never re-published under the other row's store id.
    #[error("event_id {event_id} is already stored{} with a different {what}", store_id.map(|id| format!(" (store id {id})")).unwrap_or_default())]
    ConflictingDuplicate {
        /// The event id.
        event_id: String,
        /// The stored row's id, when the other one is in the store.
        store_id: Option<u64>,
        /// What differs (`account_id`, `aggregate_id`, `payload` …).
        what: String,
    },
    /// The database refused the row's data (value out of range, invalid JSON, too long …).
    #[error("the database refused the row: {message}")]
    RowRefused {
        /// The MySQL/MariaDB error number, when there is one.
        code: Option<u16>,
        /// The database's message.
        message: String,
    },
}

/// Which external system an operation talked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Google Cloud Pub/Sub (or its emulator).
    PubSub,
    /// Google Cloud Storage (or its emulator).
    Storage,
    /// The MySQL event store.
    Database,
    /// The local spool (`SUITEX_EVENTS_SPOOL`, a SQLite database).
    Spool,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::PubSub => "Pub/Sub",
            Service::Storage => "Cloud Storage",
            Service::Database => "the event store database",
            Service::Spool => "the local spool",
        })
    }
}

/// Every error the SDK returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event (or a batch entry) broke a rule of the envelope contract. Nothing was sent.
    #[error(transparent)]
    Invalid(#[from] ValidationError),

    /// The configuration is incomplete or out of range. Nothing was sent.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),

    /// An external service refused or failed an operation.
    #[error("{operation} on {service} failed: {source}")]
    Service {
        /// The system that failed.
        service: Service,
        /// What the SDK was doing, e.g. `publishing to projects/p/topics/events.raw`.
        operation: String,
        /// Whether retrying the same operation later can succeed.
        transient: bool,
        /// The client library's error.
        #[source]
        source: BoxError,
    },

    /// An operation did not finish within its deadline. It may still complete later; emitting
    /// the same event again is safe because `event_id` is the idempotency key.
    #[error("{operation} did not complete within {deadline:?}")]
    DeadlineExceeded {
        /// The system that did not answer in time.
        service: Service,
        /// What the SDK was doing.
        operation: String,
        /// The deadline that passed.
        deadline: Duration,
    },

    /// The event was not sent because an earlier event of the same ordering key in the same
    /// call failed: a key never has a gap followed by later events. Emitting it again (after
    /// the earlier one) is safe.
    #[error("not sent: an earlier event of ordering key {ordering_key} in this call failed")]
    EarlierEventFailed {
        /// The ordering key (`{account_id}:{aggregate_type}:{aggregate_id}`).
        ordering_key: String,
    },

    /// The SDK's async runtime could not be started (the process is out of threads or memory).
    #[error("starting the SDK's async runtime failed: {0}")]
    Runtime(#[source] std::io::Error),

    /// Spool mode: the events would pass the spool's size limit. Nothing was appended; the relay
    /// frees room as it publishes (`suitex-events spool status` shows what waits).
    #[error(
        "the spool {} holds {held} bytes; {needed} more would pass SUITEX_EVENTS_SPOOL_MAX_BYTES = {limit}; nothing was spooled",
        path.display()
    )]
    SpoolFull {
        /// The spool database.
        path: std::path::PathBuf,
        /// Bytes of events waiting in it.
        held: u64,
        /// Bytes the refused events need.
        needed: u64,
        /// The limit.
        limit: u64,
    },

    /// A claim-check cannot be resolved: the object is missing, or its bytes do not match the
    /// reference's size or sha256. Retrying cannot help (the worker treats it as poison:
    /// [`Poison::ClaimCheck`] carries the same [`InvalidClaimCheck`]).
    #[error(transparent)]
    ClaimCheckInvalid(InvalidClaimCheck),
}

/// Why a claim-check cannot be resolved — the one description of it, whether it is returned as
/// an [`Error::ClaimCheckInvalid`] (fetching it) or judged [`Poison::ClaimCheck`] (the worker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim-check gs://{bucket}/{object} {problem}")]
pub struct InvalidClaimCheck {
    /// Bucket named by the reference.
    pub bucket: String,
    /// Object named by the reference.
    pub object: String,
    /// What is wrong (`does not exist`, `has sha256 … but the reference says …`).
    pub problem: String,
}

impl Error {
    pub(crate) fn service(
        service: Service,
        operation: impl Into<String>,
        transient: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Service { service, operation: operation.into(), transient, source: source.into() }
    }

    /// A Google client's failure of `operation`: transient when it is worth retrying later
    /// ([`gax_is_transient`]).
    pub(crate) fn google(
        service: Service,
        operation: impl Into<String>,
        source: google_cloud_gax::error::Error,
    ) -> Self {
        let transient = gax_is_transient(&source);
        Error::service(service, operation, transient, source)
    }

    /// The input broke a rule of the event contract.
    pub fn is_validation(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }

    /// The configuration is incomplete or out of range.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config(_))
    }

    /// The external system an operation failed on, if it was one.
    pub fn failed_service(&self) -> Option<Service> {
        match self {
            Error::Service { service, .. } | Error::DeadlineExceeded { service, .. } => Some(*service),
            Error::EarlierEventFailed { .. } => Some(Service::PubSub),
            Error::ClaimCheckInvalid(_) => Some(Service::Storage),
            Error::SpoolFull { .. } => Some(Service::Spool),
            _ => None,
        }
    }

    /// Publishing to Pub/Sub failed or timed out (or the event waited behind a failed one).
    pub fn is_publish(&self) -> bool {
        self.failed_service() == Some(Service::PubSub)
    }

    /// Cloud Storage (the claim-check bucket) failed, timed out, or refused the payload.
    pub fn is_storage(&self) -> bool {
        self.failed_service() == Some(Service::Storage)
    }

    /// The event store database failed or timed out.
    pub fn is_database(&self) -> bool {
        self.failed_service() == Some(Service::Database)
    }

    /// Spool mode: the spool failed or is full.
    pub fn is_spool(&self) -> bool {
        self.failed_service() == Some(Service::Spool)
    }

    /// The service refused the request itself as invalid (gRPC `INVALID_ARGUMENT`, HTTP 400):
    /// sending the same thing again can never succeed.
    pub fn is_refused_as_invalid(&self) -> bool {
        use google_cloud_gax::error::rpc::Code;
        let Error::Service { source, .. } = self else { return false };
        let gax = match source.downcast_ref::<google_cloud_pubsub::error::PublishError>() {
            Some(google_cloud_pubsub::error::PublishError::Rpc(e)) => Some(&**e),
            _ => source.downcast_ref::<google_cloud_gax::error::Error>(),
        };
        gax.is_some_and(|e| {
            e.status().is_some_and(|s| s.code == Code::InvalidArgument) || e.http_status_code() == Some(400)
        })
    }

    /// A deadline passed before the operation completed.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Error::DeadlineExceeded { .. })
    }

    /// Retrying the same operation later can succeed (service outage, timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Service { transient, .. } => *transient,
            Error::DeadlineExceeded { .. }
            | Error::EarlierEventFailed { .. }
            | Error::Runtime(_)
            | Error::SpoolFull { .. } => true,
            _ => false,
        }
    }

    /// The validation error, when this is one.
    pub fn as_validation(&self) -> Option<&ValidationError> {
        match self {
            Error::Invalid(v) => Some(v),
            _ => None,
        }
    }
}

/// Whether a Google client error is worth retrying later.
pub(crate) fn gax_is_transient(e: &google_cloud_gax::error::Error) -> bool {
    use google_cloud_gax::error::rpc::Code;
    if e.is_timeout() || e.is_io() || e.is_connect() || e.is_exhausted() {
        return true;
    }
    if let Some(status) = e.http_status_code() {
        return status == 408 || status == 429 || status >= 500;
    }
    matches!(
        e.status().map(|s| s.code),
        Some(
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Internal
                | Code::Unknown
        )
    )
}
