//! `suitex-events dlq list|show|redrive`: inspect and redrive dead letters.

use std::process::ExitCode;
use suitex_events::Config;
use suitex_events::worker::dlq::{self, Filter};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List dead letters (they stay on events.dlq-sub).
    List {
        /// Only this tenant's.
        #[arg(long)]
        account: Option<u64>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter in full (by event id or Pub/Sub message id).
    Show {
        /// An event id or a message id.
        id: String,
    },
    /// Re-publish dead letters to events.raw; each is acked only once its publish succeeded.
    Redrive {
        /// Only this tenant's.
        #[arg(long)]
        account: Option<u64>,
        /// Only this event.
        #[arg(long)]
        event_id: Option<String>,
        /// Redrive everything matching (required when neither --account nor --event-id is given).
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        limit: usize,
        /// Show what would be redriven; publish and ack nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    match args.command {
        Command::List { account, limit } => {
            let letters =
                dlq::list(&config, &Filter { account_id: account, limit, ..Filter::default() }).await?;
            for d in &letters {
                println!(
                    "{}  event {}  account {}  {}  attempts {}  from {}",
                    d.message_id,
                    d.event_id.as_deref().unwrap_or("?"),
                    d.account_id.map_or("?".to_string(), |a| a.to_string()),
                    d.event_type.as_deref().unwrap_or("?"),
                    d.delivery_count.map_or("?".to_string(), |c| c.to_string()),
                    d.source_subscription.as_deref().unwrap_or("?"),
                );
            }
            eprintln!("{} dead letters", letters.len());
        }
        Command::Show { id } => {
            let mut found =
                dlq::list(&config, &Filter { event_id: Some(id.clone()), ..Filter::default() }).await?;
            if found.is_empty() {
                found =
                    dlq::list(&config, &Filter { message_id: Some(id.clone()), ..Filter::default() }).await?;
            }
            match found.first() {
                Some(d) => println!("{}", serde_json::to_string_pretty(d)?),
                None => {
                    eprintln!("error: no dead letter with event id or message id {id}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Redrive { account, event_id, all, limit, dry_run } => {
            if account.is_none() && event_id.is_none() && !all {
                return Err(suitex_events::ConfigError::new(
                    "redrive",
                    "needs --account N, --event-id ID, or --all to redrive every dead letter",
                )
                .into());
            }
            let filter = Filter { account_id: account, event_id, limit, ..Filter::default() };
            let report = dlq::redrive_with(&config, &filter, dry_run, |done, seen| {
                eprint!(
                    "\r  {} {done} of {seen} dead letters looked at",
                    if dry_run { "would redrive" } else { "redriven" }
                );
                let _ = std::io::Write::flush(&mut std::io::stderr());
            })
            .await?;
            eprintln!();
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.failed.is_empty() {
                return Ok(ExitCode::from(super::EXIT_UNAVAILABLE));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
