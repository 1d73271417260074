//! `suitex-events peek`: print what a subscription holds (e.g. events.merged for the demo).

use std::collections::BTreeMap;
use std::process::ExitCode;
use suitex_events::Config;
use suitex_events::consume::puller::take_pending;

#[derive(clap::Args)]
pub struct Args {
    /// Subscription name (in the configured project).
    subscription: String,
    /// At most this many messages.
    #[arg(long, default_value_t = 100)]
    max: usize,
    /// Acknowledge what is printed (consumes it); otherwise it is released.
    #[arg(long)]
    ack: bool,
    /// Peek at a subscription the worker consumes (each message released costs it a delivery
    /// attempt there).
    #[arg(long)]
    force: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let sub = config.subscription_path(&args.subscription);
    if !args.force && counts_attempts(&config, &sub).await {
        return Err(suitex_events::ConfigError::new(
            "peek",
            format!(
                "{} dead-letters what it fails to deliver: releasing what peek takes costs each message a \
                 delivery attempt (it is dead-lettered after its last); pass --force to peek anyway",
                args.subscription
            ),
        )
        .into());
    }
    let pending = take_pending(&config, &sub, args.max).await?;
    for r in &pending.messages {
        let Some(m) = &r.message else { continue };
        let body: serde_json::Value = serde_json::from_slice(&m.data)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&m.data).into_owned()));
        let attributes: BTreeMap<_, _> = m.attributes.iter().collect();
        println!(
            "{}",
            serde_json::json!({"message_id": m.message_id, "ordering_key": m.ordering_key,
                "attributes": attributes, "data": body})
        );
    }
    eprintln!("{} messages on {}", pending.messages.len(), args.subscription);
    let consume: Vec<usize> = if args.ack { (0..pending.messages.len()).collect() } else { Vec::new() };
    pending.settle(&consume).await?;
    Ok(ExitCode::SUCCESS)
}

/// Whether releasing a message on `subscription` costs it a delivery attempt: the worker's own
/// subscription, or any with a dead-letter policy (when it can be read; if not, only the
/// worker's own is known to).
async fn counts_attempts(config: &Config, subscription: &str) -> bool {
    if subscription == config.subscription_path(&config.names().raw_subscription) {
        return true;
    }
    suitex_events::consume::subscription::dead_letter_attempts(config, subscription)
        .await
        .is_some_and(|n| n > 0)
}
