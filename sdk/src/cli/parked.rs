//! `suitex-events parked list|show|release|skip`: keys parked behind a dead letter
//! (docs/architecture.md §2.5 "Parked keys").

use std::process::ExitCode;
use suitex_events::store::{EventStore, Park, Release, StoreSettings};
use suitex_events::worker::dlq::{self, Filter};
use suitex_events::{Config, ConfigError};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the parked keys: the dead letter each waits on and how many events it keeps aside.
    List {
        /// JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one key: its open parks (oldest first), the events kept aside, and its history.
    Show {
        /// The ordering key, `account:aggregate_type:aggregate_id`.
        key: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Redrive the key's dead letters from events.dlq-sub: once the worker stores the one the
    /// key is parked on, it appends the events kept aside behind it, in order, and the key flows.
    Release {
        /// The ordering key.
        key: String,
    },
    /// Give up on the dead letter the key waits on (its oldest park): record who skipped it and
    /// why, then append the events kept aside behind it, in order. The dead letter stays on
    /// events.dlq-sub.
    Skip {
        /// The ordering key.
        key: String,
        /// Why the dead letter is given up (recorded).
        #[arg(long)]
        reason: String,
        /// Who gives it up (recorded with the database account); default $USER.
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

async fn open_park(store: &EventStore, key: &str) -> anyhow::Result<Park> {
    let parks = store.open_parks().await?;
    match parks.get(key) {
        Some(p) => Ok(p.clone()),
        None => {
            Err(ConfigError::new("key", format!("{key:?} is not parked ({} keys are)", parks.len())).into())
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = EventStore::connect(&StoreSettings::from_env()?).await?;
    match args.command {
        Command::List { json } => {
            let open = store.open_parks().await?;
            let parks: Vec<&Park> = open.all();
            if json {
                println!("{}", serde_json::to_string_pretty(&parks)?);
            } else {
                for p in &parks {
                    println!(
                        "{}  parked {} ({} s)  events aside {}  dead letter {} (message {})  {}",
                        p.ordering_key,
                        p.parked_at,
                        p.age_seconds,
                        p.parked_events,
                        p.event_id.as_deref().unwrap_or("?"),
                        p.message_id,
                        p.reason
                    );
                }
                eprintln!("{} parked keys ({} dead letters)", open.len(), parks.len());
            }
        }
        Command::Show { key, json } => {
            let history = store.parking_history(&key).await?;
            if history.is_empty() {
                return Err(ConfigError::new("key", format!("{key:?} was never parked")).into());
            }
            // Oldest first: the first is the dead letter the key waits on now.
            let parks = store.open_parks().await?.of(&key).to_vec();
            let mut aside = Vec::new();
            for p in &parks {
                aside.extend(store.parked_events(p.id).await?.iter().map(|e| e.to_wire_value()));
            }
            let open = parks.first();
            let shown = serde_json::json!({ "ordering_key": key, "parked": open, "parks": parks, "events_aside": aside, "history": history });
            if json {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                match &open {
                    Some(p) => println!(
                        "{key} is parked since {} behind dead letter {} (message {}): {}\n{} dead letters, {} events kept aside",
                        p.parked_at,
                        p.event_id.as_deref().unwrap_or("?"),
                        p.message_id,
                        p.reason,
                        parks.len(),
                        aside.len()
                    ),
                    None => println!("{key} is not parked"),
                }
                for r in &history {
                    println!(
                        "  #{} {} {}  by {}  {}",
                        r.id,
                        r.recorded_at,
                        r.action,
                        r.recorded_by,
                        r.event_id.as_deref().unwrap_or(&r.reason)
                    );
                }
            }
        }
        Command::Release { key } => {
            let park = open_park(&store, &key).await?;
            let config = Config::from_env()?;
            let filter = Filter { ordering_key: Some(key.clone()), ..Filter::default() };
            let report = dlq::redrive(&config, &filter).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.failed.is_empty() {
                return Ok(ExitCode::from(super::EXIT_UNAVAILABLE));
            }
            if report.redriven.is_empty() {
                eprintln!(
                    "error: no dead letter of {key} is on the dead-letter subscription; park {} waits on message {} — skip it if it is gone (suitex-events parked skip)",
                    park.id, park.message_id
                );
                return Ok(ExitCode::from(1));
            }
            eprintln!("redriven; the worker releases {key} once it stores the dead letter");
        }
        Command::Skip { key, reason, by } => {
            if reason.trim().is_empty() {
                return Err(ConfigError::new("--reason", "must say why the dead letter is given up").into());
            }
            let park = open_park(&store, &key).await?;
            let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "operator".into());
            match store.release(&park, Release::Skipped, None, &by, &reason).await? {
                Ok(released) => println!("{}", serde_json::to_string_pretty(&released)?),
                Err(why) => {
                    eprintln!(
                        "error: an event kept aside behind {key} is refused by the database: {why}; the key stays parked"
                    );
                    return Ok(ExitCode::from(super::EXIT_INVALID));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
