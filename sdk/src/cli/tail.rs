//! `suitex-events tail`: print the ledger as JSON lines, in `seq` order, and follow it.

use futures::StreamExt;
use std::io::Write;
use std::process::ExitCode;
use suitex_events::ConfigError;
use suitex_events::store::{EventStore, Selection, StoreSettings, StoredEvent};

#[derive(clap::Args)]
pub struct Args {
    /// Start after this ledger position (0: from the beginning).
    #[arg(long, default_value_t = 0)]
    after_seq: u64,
    /// Only this tenant's events.
    #[arg(long)]
    account: Option<u64>,
    /// Only one aggregate's events, as TYPE:ID (needs --account).
    #[arg(long, value_name = "TYPE:ID")]
    aggregate: Option<String>,
    /// Stop once what is stored now has been printed, instead of following new rows.
    #[arg(long)]
    no_follow: bool,
}

fn selection(a: &Args) -> Result<Selection, ConfigError> {
    match (&a.aggregate, a.account) {
        (Some(agg), Some(account_id)) => {
            let (t, id) = agg
                .split_once(':')
                .ok_or_else(|| ConfigError::new("--aggregate", format!("{agg:?} is not TYPE:ID")))?;
            Ok(Selection::Aggregate { account_id, aggregate_type: t.into(), aggregate_id: id.into() })
        }
        (Some(_), None) => {
            Err(ConfigError::new("--aggregate", "needs --account (aggregates belong to a tenant)"))
        }
        (None, Some(account_id)) => Ok(Selection::Tenant { account_id }),
        (None, None) => Ok(Selection::All),
    }
}

/// One line: the ledger's columns, then the envelope.
fn line(s: &StoredEvent) -> String {
    let mut map = serde_json::Map::new();
    map.insert("seq".into(), s.seq.into());
    map.insert("store_id".into(), s.id.into());
    map.insert("aggregate_version".into(), s.aggregate_version.into());
    map.insert("created_at".into(), suitex_events::envelope::format_occurred_at(s.created_at).into());
    if let serde_json::Value::Object(envelope) = s.event.to_wire_value() {
        map.extend(envelope);
    }
    serde_json::Value::Object(map).to_string()
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let selection = selection(&args)?;
    let store = EventStore::connect(&StoreSettings::from_env()?).await?;
    let stop = super::signals();
    let mut out = std::io::stdout().lock();
    if args.no_follow {
        let mut after = args.after_seq;
        loop {
            let page = store.read_after(&selection, after, 500).await?;
            let Some(last) = page.last() else { return Ok(ExitCode::SUCCESS) };
            after = last.seq;
            for s in &page {
                if writeln!(out, "{}", line(s)).is_err() {
                    return Ok(ExitCode::SUCCESS); // the reader went away (e.g. `| head`)
                }
            }
            let _ = out.flush();
        }
    }
    let mut rows = std::pin::pin!(store.follow(selection, args.after_seq));
    loop {
        let next = tokio::select! {
            next = rows.next() => next,
            _ = stop.cancelled() => return Ok(ExitCode::SUCCESS),
        };
        let Some(row) = next else { return Ok(ExitCode::SUCCESS) };
        if writeln!(out, "{}", line(&row?)).and_then(|_| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
