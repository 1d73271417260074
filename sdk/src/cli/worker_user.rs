//! `suitex-events worker-user`: create the worker's database account (INSERT, SELECT only).

use std::process::ExitCode;
use suitex_events::ConfigError;
use suitex_events::store::grants::worker_user_sql;
use suitex_events::store::{EventStore, StoreSettings};

#[derive(clap::Args)]
pub struct Args {
    /// Account name.
    #[arg(long, default_value = "suitex_worker")]
    user: String,
    /// Host part of the account (`%` for any).
    #[arg(long, default_value = "%")]
    host: String,
    /// Environment variable holding the account's password.
    #[arg(long, default_value = "SUITEX_WORKER_DB_PASSWORD")]
    password_env: String,
    /// Print the SQL (password masked) instead of running it.
    #[arg(long)]
    print: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = StoreSettings::from_env()?;
    if args.print {
        for sql in worker_user_sql(&settings.database, &args.user, &args.host, "********")? {
            println!("{sql};");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let password = std::env::var(&args.password_env).ok().filter(|p| !p.is_empty()).ok_or_else(|| {
        ConfigError::new(&args.password_env, "is not set; it holds the worker account's password")
    })?;
    let store = EventStore::connect(&settings).await?;
    store.create_worker_user(&settings.database, &args.user, &args.host, &password).await?;
    println!(
        "account '{}'@'{}' can INSERT and SELECT on {}.event_store, nothing else",
        args.user, args.host, settings.database
    );
    Ok(ExitCode::SUCCESS)
}
