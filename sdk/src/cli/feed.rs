//! `suitex-events feed`: the `events.merged` feeder alone, without consuming `events.raw-sub`
//! — for deployments where `php artisan events:work` stores and no Rust worker runs beside it.

use std::process::ExitCode;
use std::sync::Arc;
use suitex_events::Config;
use suitex_events::store::{EventStore, StoreSettings};
use suitex_events::worker::WorkerOptions;
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
    let feeder = Feeder::new(config, store, metrics, options.feeder).await?;
    feeder.run(super::signals()).await;
    Ok(ExitCode::SUCCESS)
}
