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
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runtime worker threads per process (emitting is I/O bound).
const WORKER_THREADS: usize = 2;

/// A value that needs a Tokio runtime, made once per process: on first use, and again in a
/// forked child (whose inherited runtime has no threads; it is leaked, never dropped).
pub struct PerProcess<T> {
    state: Mutex<Option<Arc<(u32, tokio::runtime::Runtime, T)>>>,
}

impl<T> Default for PerProcess<T> {
    fn default() -> Self {
        PerProcess { state: Mutex::new(None) }
    }
}

impl<T> PerProcess<T> {
    /// This process's runtime and value, made with `make` on first use here.
    pub fn get<F, Fut>(&self, make: F) -> Result<Arc<(u32, tokio::runtime::Runtime, T)>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let pid = std::process::id();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(s) = state.as_ref() {
            if s.0 == pid {
                return Ok(s.clone());
            }
            // Inherited across fork(): its threads are gone. Never drop it here.
            std::mem::forget(state.take());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("suitex-events")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let value = runtime.block_on(make())?;
        let fresh = Arc::new((pid, runtime, value));
        *state = Some(fresh.clone());
        Ok(fresh)
    }
}

impl<T> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(s) = state.filter(|s| s.0 != std::process::id()) {
            // Inherited across fork(): see above.
            std::mem::forget(s);
        }
    }
}

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
