//! The relay: drains a [spool](super::spool) to `events.raw` (`suitex-events relay`).
//!
//! Each round takes the oldest waiting events (up to [`Relay::batch`]) and emits them with a
//! direct-mode [`Emitter`]: oversized payloads go to the claim-check bucket, and every
//! ordering key is published in spool order, many keys at once. What Pub/Sub acknowledged is
//! removed from the spool; nothing else is. Within a key only the acknowledged *prefix* is
//! removed: once an event of a key fails, the later ones of that key are not sent (the emitter
//! guarantees it) and stay, so a key is never published out of order. A crash between publish
//! and removal re-publishes those events on the next start — the same `event_id`s, which the
//! worker deduplicates.
//!
//! * **Transient failures** (Pub/Sub or Cloud Storage unreachable, a deadline, a paused key):
//!   the events stay; the relay backs off (100 ms doubling to 30 s, jittered) and tries again,
//!   for as long as the outage lasts.
//! * **Poison** (an event Pub/Sub or Cloud Storage refuses as invalid, or a spooled body that no
//!   longer decodes): moved to the spool's dead table with the reason (`suitex-events spool
//!   list`), never retried, and its key goes on with its next event.

use super::Emitter;
use super::spool::{Spool, Spooled};
use super::spool_privacy::SpoolAccess;
use crate::config::Config;
use crate::envelope::Event;
use crate::error::{Error, Result};
use backon::BackoffBuilder;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events taken from the spool per round.
pub const DEFAULT_BATCH: usize = 1000;
/// How often an empty spool is looked at again.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// What the relay has done since it started (its Prometheus counters).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Events published to `events.raw` and removed from the spool.
    pub published: AtomicU64,
    /// Failed publish attempts of events that stayed in the spool.
    pub retries: AtomicU64,
    /// Events moved to the dead table.
    pub dead: AtomicU64,
}

/// Drains one spool to `events.raw`.
pub struct Relay {
    spool: Arc<Spool>,
    emitter: Emitter,
    batch: usize,
    stats: Arc<RelayStats>,
    /// `relay.lock` in the spool directory, locked for as long as the relay lives: one relay
    /// per spool (the kernel releases it when the process dies, however it dies).
    _lock: std::fs::File,
}

/// Takes the spool's relay lock, or says who holds it.
fn lock(dir: &std::path::Path, access: &SpoolAccess) -> Result<std::fs::File> {
    let path = dir.join("relay.lock");
    let fail = |e: std::io::Error| {
        Error::service(crate::error::Service::Spool, format!("opening {}", path.display()), false, e)
    };
    access.secure_file(&path)?;
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(fail)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Config(crate::error::ConfigError::new(
            crate::settings::SPOOL.name,
            format!(
                "{} is drained by another relay already ({} is locked); run one relay per spool",
                dir.display(),
                path.display()
            ),
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(fail(e)),
    }
}

/// The outcome of one round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Events published and removed.
    pub published: usize,
    /// Events that stay for a later round after a transient failure.
    pub retried: usize,
    /// Events moved to the dead table.
    pub dead: usize,
}

impl Relay {
    /// A relay for `config`'s spool, publishing with `config` in direct mode.
    pub async fn connect(config: &Config) -> Result<Relay> {
        let dir = Spool::dir_of(config)?;
        let access = SpoolAccess::of(config)?;
        // Checked before the lock file is made: nothing is written into a spool that is not
        // private.
        access.secure_dir(dir)?;
        let lock = lock(dir, &access)?;
        let spool = Arc::new(Spool::open(dir, config.spool_max_bytes(), &access)?);
        let emitter = Emitter::connect(config.without_spool()).await?;
        Ok(Relay { spool, emitter, batch: DEFAULT_BATCH, stats: Default::default(), _lock: lock })
    }

    /// Events taken per round (default 1000).
    pub fn batch(mut self, events: usize) -> Relay {
        self.batch = events.max(1);
        self
    }

    /// The spool it drains.
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<RelayStats> {
        &self.stats
    }

    /// Drains until `stop` is cancelled — or, with `until_empty`, until a round finds the spool
    /// empty. The round in progress is finished first (its publishes complete or reach their
    /// deadline), so nothing is left half-done.
    pub async fn run(&self, stop: CancellationToken, until_empty: bool) -> Result<()> {
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(30))
            .with_jitter()
            .without_max_times();
        let mut backoff = builder.build();
        while !stop.is_cancelled() {
            let pause = match self.round().await {
                // Nothing was waiting.
                Ok(round) if round == Round::default() => {
                    if until_empty {
                        break;
                    }
                    backoff = builder.build();
                    IDLE_POLL
                }
                Ok(round) if round.retried == 0 => {
                    backoff = builder.build();
                    Duration::ZERO
                }
                Ok(_) => backoff.next().unwrap_or(Duration::from_secs(30)),
                // The spool itself failed (busy for long, disk full): wait and look again.
                Err(e) => {
                    tracing::warn!(error = %e, "reading or updating the spool failed; retrying");
                    backoff.next().unwrap_or(Duration::from_secs(30))
                }
            };
            if !pause.is_zero() {
                let _ = tokio::time::timeout(pause, stop.cancelled()).await;
            }
        }
        self.emitter.flush().await;
        Ok(())
    }

    /// One round: the oldest waiting events, published in spool order per key.
    pub async fn round(&self) -> Result<Round> {
        let waiting = self.spool.pending(self.batch)?;
        let mut round = Round::default();
        if waiting.is_empty() {
            return Ok(round);
        }
        let mut events: Vec<(Spooled, Event)> = Vec::with_capacity(waiting.len());
        for s in waiting {
            match decode(&s, &self.emitter) {
                Ok(e) => events.push((s, e)),
                Err(why) => {
                    tracing::error!(event_id = %s.event_id, seq = s.seq, reason = %why, "spooled event is poison; moved to the dead table");
                    self.spool.bury(s.seq, &why)?;
                    round.dead += 1;
                }
            }
        }
        let (spooled, batch): (Vec<Spooled>, Vec<Event>) = events.into_iter().unzip();
        let outcomes = match self.emitter.relay_events(batch).await {
            Ok(outcomes) => outcomes,
            // Every event was size-checked by `decode`; a refusal here is a bug, never a reason
            // to drop: keep them all and let the operator see it.
            Err(e) => {
                self.spool.failed(&spooled.iter().map(|s| s.seq).collect::<Vec<_>>(), &e.to_string())?;
                self.stats.retries.fetch_add(spooled.len() as u64, Ordering::Relaxed);
                round.retried = spooled.len();
                tracing::error!(error = %e, "the emitter refused a spooled batch; keeping it");
                return Ok(round);
            }
        };
        let (mut published, mut failed) = (Vec::new(), Vec::new());
        let mut first_error: Option<String> = None;
        for (s, outcome) in spooled.iter().zip(outcomes) {
            match outcome {
                Ok(_) => published.push(s.seq),
                Err(e) if is_poison(&e) => {
                    tracing::error!(event_id = %s.event_id, seq = s.seq, error = %e, "Pub/Sub refused a spooled event as invalid; moved to the dead table");
                    self.spool.bury(s.seq, &e.to_string())?;
                    round.dead += 1;
                }
                Err(e) => {
                    if !matches!(e, Error::EarlierEventFailed { .. }) {
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                    failed.push(s.seq);
                }
            }
        }
        self.spool.remove(&published)?;
        round.published = published.len();
        round.retried = failed.len();
        if !failed.is_empty() {
            let why = first_error.unwrap_or_else(|| "an earlier event of its key failed".into());
            tracing::warn!(events = failed.len(), error = %why, "publishing spooled events failed; they stay in the spool");
            self.spool.failed(&failed, &why)?;
        }
        self.stats.published.fetch_add(round.published as u64, Ordering::Relaxed);
        self.stats.retries.fetch_add(round.retried as u64, Ordering::Relaxed);
        self.stats.dead.fetch_add(round.dead as u64, Ordering::Relaxed);
        Ok(round)
    }
}

/// The spooled event, or why it can never be published.
fn decode(s: &Spooled, emitter: &Emitter) -> std::result::Result<Event, String> {
    let event = Event::decode(&s.body).map_err(|e| format!("the spooled body is not a valid event: {e}"))?;
    let max = emitter.config().max_payload();
    // The payload's compact JSON is part of the body: only a body over the limit needs the
    // payload measured (serializing every payload here would repeat the emitter's own work).
    if s.body.len() <= max {
        return Ok(event);
    }
    match event.payload().json_text() {
        Some(text) if text.len() > max => Err(format!(
            "payload is {} bytes as JSON; the limit is {max} (SUITEX_EVENTS_MAX_PAYLOAD)",
            text.len()
        )),
        _ => Ok(event),
    }
}

/// An event that can never be published as it is.
fn is_poison(e: &Error) -> bool {
    e.is_validation() || e.is_refused_as_invalid() || matches!(e, Error::ClaimCheckInvalid(_))
}
