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

use crate::config::Config;
use crate::emitter::{EmitReceipt, Emitter};
use crate::envelope::Event;
use crate::error::{Error, Result, Service};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runtime worker threads per process (emitting is I/O bound).
const WORKER_THREADS: usize = 2;

/// One process's runtime and emitter.
struct ProcessState {
    pid: u32,
    runtime: tokio::runtime::Runtime,
    emitter: Emitter,
}

/// A blocking, fork-safe [`Emitter`].
pub struct BlockingEmitter {
    config: Config,
    state: Mutex<Option<Arc<ProcessState>>>,
}

impl BlockingEmitter {
    /// An emitter for `config`. Creates no thread, runtime or connection.
    pub fn new(config: Config) -> BlockingEmitter {
        BlockingEmitter { config, state: Mutex::new(None) }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This process's runtime and emitter, built on first use here.
    fn process(&self) -> Result<Arc<ProcessState>> {
        let pid = std::process::id();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(s) = state.as_ref() {
            if s.pid == pid {
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
            .map_err(|e| Error::service(Service::PubSub, "starting the async runtime", true, e))?;
        let emitter = runtime.block_on(Emitter::connect(self.config.clone()))?;
        let fresh = Arc::new(ProcessState { pid, runtime, emitter });
        *state = Some(fresh.clone());
        Ok(fresh)
    }

    /// Emits one event within the configured deadline.
    pub fn emit(&self, event: Event) -> Result<EmitReceipt> {
        let p = self.process()?;
        p.runtime.block_on(p.emitter.emit(event))
    }

    /// Emits one event within `deadline`.
    pub fn emit_within(&self, event: Event, deadline: Duration) -> Result<EmitReceipt> {
        let p = self.process()?;
        p.runtime.block_on(p.emitter.emit_within(event, deadline))
    }

    /// Emits several events (see [`Emitter::emit_batch`]).
    pub fn emit_batch(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        let p = self.process()?;
        p.runtime.block_on(p.emitter.emit_batch(events))
    }
}

impl Drop for BlockingEmitter {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(s) = state.filter(|s| s.pid != std::process::id()) {
            // Inherited across fork(): see above.
            std::mem::forget(s);
        }
    }
}
