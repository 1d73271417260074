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
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// Where a worker-side process serves its metrics (`worker`, `feed`).
#[derive(clap::Args)]
pub(super) struct MetricsArgs {
    /// Address of the Prometheus endpoint (`/metrics`); `off` disables it.
    #[arg(long, env = "SUITEX_WORKER_METRICS_ADDR", default_value = suitex_events::settings::WORKER_METRICS_ADDR.default.text())]
    pub(super) metrics_addr: String,
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
    serve_metrics(&args.metrics.metrics_addr, worker.metrics(), Some(worker.health())).await?;
    worker.run(stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// Serves `/metrics` (and, with `health`, `/healthz` and `/readyz`) on `addr`, the value of
/// `SUITEX_WORKER_METRICS_ADDR` (`off`: nothing).
pub(super) async fn serve_metrics(
    addr: &str,
    metrics: std::sync::Arc<suitex_events::worker::metrics::Metrics>,
    health: Option<std::sync::Arc<suitex_events::worker::health::Health>>,
) -> anyhow::Result<()> {
    if addr == "off" {
        return Ok(());
    }
    let setting = suitex_events::settings::WORKER_METRICS_ADDR.name;
    let parsed: SocketAddr = addr.parse().map_err(|_| {
        suitex_events::ConfigError::new(setting, format!("is {addr:?}; expected host:port or off"))
    })?;
    let probes = health.is_some();
    let bound = suitex_events::worker::metrics::spawn(parsed, metrics, health)
        .await
        .map_err(|e| suitex_events::ConfigError::new(setting, format!("{parsed} cannot be bound: {e}")))?;
    if probes {
        tracing::info!(%bound, "metrics at http://{bound}/metrics; probes at /healthz and /readyz");
    } else {
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }
    Ok(())
}
