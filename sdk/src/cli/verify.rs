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
    let result = store.verify_chain(from, args.to_seq, |seq| bar.set_position(seq + 1 - from)).await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = serde_json::to_value(&result)?;
        v["intact"] = result.intact().into();
        v["rows_per_second"] = ((result.rows as f64 / seconds.max(1e-9)).round()).into();
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
            "verify: seq {} to {} intact ({} rows, {:.0} rows/s); head hash {}",
            result.from_seq,
            result.to_seq,
            result.rows,
            result.rows as f64 / seconds.max(1e-9),
            result.head_hash.as_deref().unwrap_or("(no rows)")
        );
    }
    Ok(if result.intact() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_INVALID) })
}
