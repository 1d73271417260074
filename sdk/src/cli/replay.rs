//! `suitex-events replay`: re-publish stored events to events.merged, marked as replayed.

use std::io::Write;
use std::process::ExitCode;
use suitex_events::Config;
use suitex_events::ConfigError;
use suitex_events::store::{EventStore, Selection, StoreSettings};
use suitex_events::worker::replay::Replayer;

#[derive(clap::Args)]
pub struct Args {
    /// The tenant (required with --aggregate; limits --from-id/--to-id to it).
    #[arg(long)]
    account: Option<u64>,
    /// One aggregate's stream, as TYPE:ID (e.g. customer:C-1001).
    #[arg(long, value_name = "TYPE:ID")]
    aggregate: Option<String>,
    /// First store id of a range.
    #[arg(long)]
    from_id: Option<u64>,
    /// Last store id of a range.
    #[arg(long)]
    to_id: Option<u64>,
    /// Most events per second (0: no limit).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Print the plan (what would be replayed) without publishing.
    #[arg(long)]
    dry_run: bool,
}

fn selection(a: &Args) -> Result<Selection, ConfigError> {
    match (&a.aggregate, a.from_id, a.to_id, a.account) {
        (Some(agg), None, None, Some(account_id)) => {
            let (t, id) = agg
                .split_once(':')
                .ok_or_else(|| ConfigError::new("--aggregate", format!("{agg:?} is not TYPE:ID")))?;
            Ok(Selection::Aggregate { account_id, aggregate_type: t.into(), aggregate_id: id.into() })
        }
        (Some(_), _, _, None) => {
            Err(ConfigError::new("--aggregate", "needs --account (aggregates belong to a tenant)"))
        }
        (None, Some(from), Some(to), account_id) if from <= to => {
            Ok(Selection::IdRange { from, to, account_id })
        }
        (None, Some(from), Some(to), _) => {
            Err(ConfigError::new("--from-id", format!("{from} is after --to-id {to}")))
        }
        (None, None, None, Some(account_id)) => Ok(Selection::Tenant { account_id }),
        _ => Err(ConfigError::new(
            "selection",
            "give one of: --account N --aggregate TYPE:ID | --account N | --from-id A --to-id B [--account N]",
        )),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let selection = selection(&args)?;
    let config = Config::from_env()?;
    let store = EventStore::open(&StoreSettings::from_env()?).await?;
    let replayer = Replayer::new(config, store).await?;
    let total = replayer.count(&selection).await?;
    eprintln!("replaying {total} events of {selection:?} to events.merged at {} events/s", args.rate);
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let rate = (args.rate > 0.0).then_some(args.rate);
    let started = std::time::Instant::now();
    let done = replayer
        .replay(&selection, rate, |done| {
            let pct = if total == 0 { 100.0 } else { done as f64 * 100.0 / total as f64 };
            let per_s = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\r  [{:<30}] {done}/{total} ({pct:.0}%) {per_s:.0}/s",
                "#".repeat((pct / 100.0 * 30.0) as usize)
            );
            let _ = std::io::stderr().flush();
        })
        .await?;
    eprintln!();
    println!("{}", serde_json::json!({ "replayed": done }));
    Ok(ExitCode::SUCCESS)
}
