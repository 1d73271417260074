//! `suitex-events worker`: consume events.raw-sub into the event store.

use backon::BackoffBuilder;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use suitex_events::Config;
use suitex_events::store::{EventStore, StoreSettings};
use suitex_events::worker::{Worker, WorkerOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Address of the Prometheus endpoint (`/metrics`); `off` disables it.
    #[arg(long, env = "SUITEX_WORKER_METRICS_ADDR", default_value = suitex_events::settings::WORKER_METRICS_ADDR.default.text())]
    metrics_addr: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let settings = StoreSettings::from_env()?;
    let options = WorkerOptions::from_env()?;
    let stop = super::signals();

    // The worker cannot store anything without its database: wait for it rather than consume.
    let mut store = EventStore::connect(&settings).await?;
    let mut backoff = options.backoff().with_min_delay(Duration::from_millis(500)).build();
    loop {
        match store.refresh_limits().await {
            Ok(()) => break,
            Err(e) => {
                let wait = backoff.next().unwrap_or(options.backoff_max);
                tracing::warn!(error = %e, retry_in = ?wait, "event store unreachable at start-up");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return Ok(ExitCode::SUCCESS),
                }
            }
        }
    }
    let needed = config.max_payload() + 64 * 1024;
    if store.max_packet() < needed {
        tracing::warn!(
            max_allowed_packet = store.max_packet(),
            max_payload = config.max_payload(),
            "the database's max_allowed_packet is below SUITEX_EVENTS_MAX_PAYLOAD; larger payloads will be dead-lettered — raise max_allowed_packet"
        );
    }

    let worker = Worker::new(config, store, options).await?;
    if args.metrics_addr != "off" {
        let addr: SocketAddr = args.metrics_addr.parse().map_err(|_| {
            suitex_events::ConfigError::new(
                "SUITEX_WORKER_METRICS_ADDR",
                format!("is {:?}; expected host:port or off", args.metrics_addr),
            )
        })?;
        let bound = suitex_events::worker::metrics::spawn(addr, worker.metrics(), Some(worker.health()))
            .await
            .map_err(|e| {
                suitex_events::ConfigError::new(
                    "SUITEX_WORKER_METRICS_ADDR",
                    format!("{addr} cannot be bound: {e}"),
                )
            })?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics; probes at /healthz and /readyz");
    }
    worker.run(stop).await?;
    Ok(ExitCode::SUCCESS)
}
