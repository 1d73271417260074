//! A synchronous emitter for callers without an async runtime (the C ABI, the PHP extension,
//! plain threads), safe across `fork()`.
//!
//! Nothing is created up front: the Tokio runtime and the clients are built on first use, for
//! the current process. A process forked after that (php-fpm's workers, `pcntl_fork`, a C
//! program's children) inherits a runtime whose threads do not exist in it; the first call in the
//! child notices the changed process id, leaks the inherited runtime — dropping it would wait
//! for threads that will never answer — and builds its own.
//!
//! The emitter is `Send + Sync`: share one per process between threads. Do not call it from
//! inside an async runtime (it blocks the calling thread).

use super::{EmitReceipt, Emitter};
use crate::config::Config;
use crate::envelope::Event;
use crate::error::Result;
use std::time::Duration;

use crate::per_process::PerProcess;

/// A blocking, fork-safe [`Emitter`].
pub struct BlockingEmitter {
    config: Config,
    process: PerProcess<Emitter>,
}

impl BlockingEmitter {
    /// An emitter for `config`. Creates no thread, runtime or connection.
    pub fn new(config: Config) -> BlockingEmitter {
        BlockingEmitter { config, process: PerProcess::default() }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn run<R>(&self, f: impl AsyncFnOnce(&Emitter) -> R) -> Result<R> {
        let p = self.process.get(|| Emitter::connect(self.config.clone()))?;
        Ok(p.1.block_on(f(&p.2)))
    }

    /// Emits one event within the configured deadline (see [`Emitter::emit_event`]).
    pub fn emit_event(&self, event: Event) -> Result<EmitReceipt> {
        self.run(async |e| e.emit_event(event).await)?
    }

    /// Emits one event within `deadline`.
    pub fn emit_event_within(&self, event: Event, deadline: Duration) -> Result<EmitReceipt> {
        self.run(async |e| e.emit_event_within(event, deadline).await)?
    }

    /// Emits several events (see [`Emitter::emit_events`]).
    pub fn emit_events(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        self.run(async |e| e.emit_events(events).await)?
    }

    /// Deprecated name of [`BlockingEmitter::emit_event`].
    #[deprecated(since = "0.2.0", note = "use emit_event")]
    pub fn emit(&self, event: Event) -> Result<EmitReceipt> {
        self.emit_event(event)
    }

    /// Deprecated name of [`BlockingEmitter::emit_events`].
    #[deprecated(since = "0.2.0", note = "use emit_events")]
    pub fn emit_batch(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        self.emit_events(events)
    }
}
