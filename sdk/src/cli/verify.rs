//! `suitex-events verify`: recompute the ledger's hash chain (docs/architecture.md §2.2) with
//! the reader role and report the first row that does not match.

use super::EXIT_INVALID;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;
use suitex_events::store::{EventStore, StoreSettings};

#[derive(clap::Args)]
pub struct Args {
    /// First ledger position to check (the row before it anchors the chain).
    #[arg(long, default_value_t = 1)]
    from_seq: u64,
    /// Last ledger position to check (default: the newest row).
    #[arg(long)]
    to_seq: Option<u64>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also hold the chain to every digest in the digest bucket (SUITEX_WORKER_DIGEST_BUCKET,
    /// reached through the SUITEX_EVENTS_* Cloud Storage settings): catches a chain recomputed
    /// after a change and the newest rows removed.
    #[cfg(feature = "worker")]
    #[arg(long)]
    digests: bool,
}

/// The digests to hold the chain to, when asked for.
#[cfg(feature = "worker")]
async fn checkpoints(args: &Args) -> anyhow::Result<Vec<suitex_events::store::Checkpoint>> {
    use suitex_events::worker::digests::Digests;
    if !args.digests {
        return Ok(Vec::new());
    }
    let options = suitex_events::worker::WorkerOptions::from_env()?;
    let Some(o) = options.feeder.digests else {
        anyhow::bail!("--digests: SUITEX_WORKER_DIGEST_BUCKET is off; name the digest bucket");
    };
    let digests = Digests::connect(&suitex_events::Config::from_env()?, &o.bucket).await?;
    Ok(digests.all().await?.iter().map(|d| d.checkpoint()).collect())
}

#[cfg(not(feature = "worker"))]
async fn checkpoints(_: &Args) -> anyhow::Result<Vec<suitex_events::store::Checkpoint>> {
    Ok(Vec::new())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = EventStore::connect(&StoreSettings::from_env()?).await?;
    let head = store.head_seq().await?;
    let last = args.to_seq.map_or(head, |t| t.min(head));
    // A bar on a terminal only: scripts and logs get the result alone.
    let bar = ProgressBar::with_draw_target(
        Some(last.saturating_sub(args.from_seq.max(1)) + 1),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({per_sec}, {eta} left)")
            .expect("the template is valid"),
    );
    let started = Instant::now();
    let from = args.from_seq.max(1);
    let digests = checkpoints(&args).await?;
    let result = store
        .verify_chain_against(from, args.to_seq, &digests, |seq| bar.set_position(seq + 1 - from))
        .await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = serde_json::to_value(&result)?;
        v["intact"] = result.intact().into();
        v["rows_per_second"] = ((result.rows as f64 / seconds.max(1e-9)).round()).into();
        v["digests"] = digests.len().into();
        println!("{v}");
    } else if let Some(b) = &result.first_break {
        eprintln!("verify: the chain breaks at seq {}: {b}", b.seq());
        if result.rows > 0 {
            eprintln!(
                "verify: seq {} to {} ({} rows) are intact",
                result.from_seq, result.to_seq, result.rows
            );
        }
    } else {
        println!(
            "verify: seq {} to {} intact ({} rows, {:.0} rows/s{}); head hash {}",
            result.from_seq,
            result.to_seq,
            result.rows,
            result.rows as f64 / seconds.max(1e-9),
            if digests.is_empty() { String::new() } else { format!(", {} digests agree", digests.len()) },
            result.head_hash.as_deref().unwrap_or("(no rows)")
        );
    }
    Ok(if result.intact() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_INVALID) })
}
