//! `suitex-events feed`: the `events.merged` feeder without consuming `events.raw-sub` — for
//! deployments where `php artisan events:work` stores and no Rust worker runs beside it. It also
//! runs the dead-letter watch (unless `SUITEX_WORKER_DLQ_WATCH=off`), which parks the key of a
//! dead letter no worker parked itself (docs/architecture.md §2.5 "Parked keys"), as every Rust
//! worker does.

use std::process::ExitCode;
use std::sync::Arc;
use suitex_events::Config;
use suitex_events::store::{EventStore, StoreSettings};
use suitex_events::worker::WorkerOptions;
use suitex_events::worker::dlq_watch::DlqWatch;
use suitex_events::worker::feeder::Feeder;
use suitex_events::worker::metrics::Metrics;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    metrics: super::worker::MetricsArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let store = EventStore::connect(&StoreSettings::from_env()?).await?;
    let options = WorkerOptions::from_env()?;
    let metrics = Arc::new(Metrics::default());
    super::worker::serve_metrics(&args.metrics.metrics_addr, metrics.clone(), None).await?;
    let stop = super::signals();
    if options.dlq_watch {
        let watch = DlqWatch::new(config.clone(), store.clone(), metrics.clone());
        let stop = stop.clone();
        tokio::spawn(async move { watch.run(stop).await });
    }
    let feeder = Feeder::new(config, store, metrics, options.feeder).await?;
    feeder.run(stop).await;
    Ok(ExitCode::SUCCESS)
}
