//! A value that needs a Tokio runtime, made once per process and again after `fork()`: what the
//! blocking emitter (the C library, the PHP extension) and the blocking inbox (PHP queue workers)
//! run on.
//!
//! Nothing is created up front: php-fpm forks its workers after module start-up, and a child
//! inherits a runtime whose threads do not exist in it. The first call in the child notices the
//! changed process id, leaks the inherited runtime — dropping it would wait for threads that will
//! never answer — and builds its own.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::sync::Arc;

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
        let mut state = self.state.lock();
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
        let state = self.state.get_mut().take();
        if let Some(s) = state.filter(|s| s.0 != std::process::id()) {
            // Inherited across fork(): see above.
            std::mem::forget(s);
        }
    }
}
