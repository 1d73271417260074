//! `suitex-events relay` and `suitex-events spool`: drain the spool to events.raw; look into it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use suitex_events::Config;
use suitex_events::emit::{Relay, RelayStats, Spool, SpoolAccess};
use suitex_events::serve::Exposition;

#[derive(clap::Args)]
pub struct RelayArgs {
    /// Events taken from the spool per round.
    #[arg(long, default_value_t = suitex_events::emit::relay::DEFAULT_BATCH)]
    batch: usize,
    /// Exit once the spool is empty (for scripts and tests); otherwise run until SIGTERM.
    #[arg(long)]
    until_empty: bool,
    /// Address of the Prometheus endpoint (`/metrics`, `/healthz`); `off` disables it.
    #[arg(long, env = "SUITEX_RELAY_METRICS_ADDR", default_value = suitex_events::settings::RELAY_METRICS_ADDR.default.text())]
    metrics_addr: String,
}

/// The relay's `/metrics`: its counters, and the spool as it is at the scrape.
#[derive(Debug)]
struct RelayMetrics {
    spool: Arc<Spool>,
    stats: Arc<RelayStats>,
}

impl Collector for RelayMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let o = std::sync::atomic::Ordering::Relaxed;
        for (name, help, value) in [
            (
                "published",
                "Spooled events published to events.raw and removed from the spool",
                self.stats.published.load(o),
            ),
            (
                "retries",
                "Publish attempts of spooled events that failed and stay in the spool",
                self.stats.retries.load(o),
            ),
            ("dead", "Spooled events moved to the dead table (refused as invalid)", self.stats.dead.load(o)),
        ] {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        // An unreadable spool shows as missing gauges (and a warning), never as zeros.
        let status = match self.spool.status() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading the spool for /metrics failed");
                return Ok(());
            }
        };
        for (name, help, value) in [
            ("spool_depth", "Events waiting in the spool", status.depth as f64),
            ("spool_bytes", "Bytes of the waiting events, as counted against the limit", status.bytes as f64),
            ("spool_max_bytes", "The spool's limit (SUITEX_EVENTS_SPOOL_MAX_BYTES)", status.max_bytes as f64),
            (
                "spool_oldest_age_seconds",
                "Age of the oldest waiting event (0 when the spool is empty)",
                status.oldest_age_ms.unwrap_or(0) as f64 / 1e3,
            ),
            ("spool_dead", "Events in the spool's dead table", status.dead as f64),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// The relay's endpoint: one registry holding the relay's collector.
struct RelayEndpoint(Registry);

impl RelayEndpoint {
    fn new(metrics: RelayMetrics) -> RelayEndpoint {
        let mut registry = Registry::with_prefix("suitex_events_relay");
        registry.register_collector(Box::new(metrics));
        RelayEndpoint(registry)
    }
}

impl Exposition for RelayEndpoint {
    fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0)
            .expect("writing to a String cannot fail");
        out
    }
}

#[derive(clap::Args)]
pub struct SpoolArgs {
    #[command(subcommand)]
    command: SpoolCommand,
}

#[derive(clap::Subcommand)]
enum SpoolCommand {
    /// Depth, bytes (and the limit), age of the oldest event, dead events — as JSON.
    Status,
    /// The dead events (refused by Pub/Sub as invalid), one JSON object per line, with the reason.
    List {
        /// Most events listed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub async fn relay(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let relay = Relay::connect(&config).await?.batch(args.batch);
    if args.metrics_addr != "off" {
        let addr: SocketAddr = args.metrics_addr.parse().map_err(|_| {
            suitex_events::ConfigError::new(
                suitex_events::settings::RELAY_METRICS_ADDR.name,
                format!("is {:?}; expected host:port or off", args.metrics_addr),
            )
        })?;
        let endpoint = Arc::new(RelayEndpoint::new(RelayMetrics {
            spool: relay.spool().clone(),
            stats: relay.stats().clone(),
        }));
        let bound = suitex_events::serve::spawn(addr, endpoint).await.map_err(|e| {
            suitex_events::ConfigError::new(
                suitex_events::settings::RELAY_METRICS_ADDR.name,
                format!("{addr} cannot be bound: {e}"),
            )
        })?;
        tracing::info!(%bound, "metrics endpoint listening");
    }
    let status = relay.spool().status()?;
    tracing::info!(spool = %status.path.display(), depth = status.depth, bytes = status.bytes, "relay started");
    relay.run(super::signals(), args.until_empty).await?;
    let stats = relay.stats();
    let o = std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        published = stats.published.load(o),
        retries = stats.retries.load(o),
        dead = stats.dead.load(o),
        "relay stopped"
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn spool(args: SpoolArgs) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let spool = Spool::open(Spool::dir_of(&config)?, config.spool_max_bytes(), &SpoolAccess::of(&config)?)?;
    match args.command {
        SpoolCommand::Status => println!("{}", serde_json::to_string_pretty(&spool.status()?)?),
        SpoolCommand::List { limit } => {
            for dead in spool.dead(limit)? {
                println!("{}", serde_json::to_string(&dead)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
