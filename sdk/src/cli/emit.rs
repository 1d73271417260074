//! `suitex-events emit`: publish events given as JSON.

use super::EXIT_UNAVAILABLE;
use anyhow::Context;
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use suitex_events::envelope::exact;
use suitex_events::{Config, Emitter, Error, Event, ValidationError};

#[derive(clap::Args)]
pub struct Args {
    /// File holding one event (a JSON object) or a batch (a JSON array); `-` or nothing reads stdin.
    file: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut input = Vec::new();
    match args.file.as_deref() {
        None => std::io::stdin().read_to_end(&mut input).context("reading stdin")?,
        Some(p) if p.as_os_str() == "-" => {
            std::io::stdin().read_to_end(&mut input).context("reading stdin")?
        }
        Some(p) => {
            input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            input.len()
        }
    };
    // The text, not the parsed value, says whether the ledger would store it exactly.
    if let Ok(text) = std::str::from_utf8(&input) {
        match text.trim_start().starts_with('[') {
            true => exact::check_events_json(text),
            false => exact::check_event_json(text),
        }
        .map_err(Error::Invalid)?;
    }
    let value: Value = serde_json::from_slice(&input)
        .map_err(|e| Error::Invalid(ValidationError::new("event", format!("is not valid JSON: {e}"))))?;
    // Everything is checked before anything is sent.
    let emitter = Emitter::connect(Config::from_env()?).await?;
    match value {
        Value::Array(items) => {
            let events = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| Event::from_input(v).map_err(|e| e.within(&format!("events[{i}]"))))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::Invalid)?;
            let results = emitter.emit_events(events).await?;
            let failed = results.iter().filter(|r| r.is_err()).count();
            let out: Vec<Value> = results
                .into_iter()
                .map(|r| match r {
                    Ok(receipt) => serde_json::to_value(receipt).expect("receipt serializes"),
                    Err(e) => json!({"error": e.to_string()}),
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
            if failed > 0 {
                eprintln!("error: {failed} of {} events were not published", out.len());
                return Ok(ExitCode::from(EXIT_UNAVAILABLE));
            }
        }
        other => {
            let event = Event::from_input(other).map_err(Error::Invalid)?;
            let receipt = emitter.emit_event(event).await?;
            println!("{}", serde_json::to_string_pretty(&receipt)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
