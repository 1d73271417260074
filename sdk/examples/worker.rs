//! A worker embedded in a Rust service (feature `worker`): events.raw-sub → event_store →
//! events.merged, until Ctrl-C. The `suitex-events worker` command is the same with metrics,
//! health endpoints and signal handling around it.
//!
//! ```sh
//! scripts/services start && eval "$(scripts/services env)"
//! cargo run -p suitex-events --features worker --example worker
//! ```

use suitex_events::{Config, EventStore, StoreSettings, Worker, WorkerOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = EventStore::open(&StoreSettings::from_env()?).await?;
    let worker = Worker::new(Config::from_env()?, store, WorkerOptions::from_env()?).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    let summary = worker.run(stop).await?;
    println!("stopped after {} batches", summary.batches);
    Ok(())
}
