//! `suitex-events migrate`: apply the embedded migrations to the event store database.

use std::process::ExitCode;
use suitex_events::store::{EventStore, MIGRATOR, StoreSettings};

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_: Args) -> anyhow::Result<ExitCode> {
    let settings = StoreSettings::from_env()?;
    let store = EventStore::connect(&settings).await?;
    store.migrate().await?;
    for m in MIGRATOR.iter() {
        println!("applied  {:>4}  {}", m.version, m.description);
    }
    println!("{} is up to date", settings.describe());
    Ok(ExitCode::SUCCESS)
}
