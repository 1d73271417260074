//! `suitex-events provision`: local/dev topology on the emulators.

use std::process::ExitCode;
use suitex_events::Config;
use suitex_events::worker::provision::{
    ACK_DEADLINE_RANGE, ACK_DEADLINE_SECONDS, ProvisionOptions, Status, provision, warnings,
};

#[derive(clap::Args)]
pub struct Args {
    /// Create events.raw-sub WITHOUT message ordering (required on the official emulator, which
    /// crashes on ordering + dead-lettering; production keeps ordering on).
    #[arg(long)]
    without_ordering: bool,
    /// Redeliver a nacked message at once instead of after Pub/Sub's retry back-off (10 s
    /// doubling to 600 s, as in production): for tests and experiments that watch a poison
    /// message reach events.dlq.
    #[arg(long)]
    immediate_redelivery: bool,
    /// Also create this subscription on events.merged (repeatable).
    #[arg(long = "merged-subscription", value_name = "NAME")]
    merged_subscriptions: Vec<String>,
    /// Ack deadline of the subscriptions, in seconds (10-600; production has 60): for tests
    /// that kill a worker and wait for the leases it held to run out.
    #[arg(long, value_name = "SECONDS", default_value_t = ACK_DEADLINE_SECONDS,
          value_parser = clap::value_parser!(i32).range(*ACK_DEADLINE_RANGE.start() as i64..=*ACK_DEADLINE_RANGE.end() as i64))]
    ack_deadline: i32,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let options = ProvisionOptions {
        without_ordering: args.without_ordering,
        merged_subscriptions: args.merged_subscriptions,
        ack_deadline_seconds: args.ack_deadline,
        retry_backoff: if args.immediate_redelivery {
            None
        } else {
            ProvisionOptions::default().retry_backoff
        },
        ..ProvisionOptions::default()
    };
    for w in warnings(&options, &config) {
        eprintln!("{w}");
    }
    let steps = provision(&config, &options).await?;
    for step in &steps {
        match &step.status {
            Status::Created => println!("created  {:<12} {}", step.kind, step.name),
            Status::Exists => println!("exists   {:<12} {}", step.kind, step.name),
            Status::CreatedCapped(d) => {
                println!("created  {:<12} {}", step.kind, step.name);
                eprintln!("warning: {} {}: {d}", step.kind, step.name);
            }
            Status::ExistsDiffering(d) => {
                println!("exists   {:<12} {}", step.kind, step.name);
                eprintln!("warning: {} {} differs from the wanted settings: {d}", step.kind, step.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
