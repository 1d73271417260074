//! `suitex-events grants`: give a database account exactly one role's rights (migrator,
//! writer, reader), revoking everything else, or check that it holds no more.
//! `suitex-events worker-user` is the same command for the writer role (kept for existing
//! scripts).

use std::process::ExitCode;
use suitex_events::ConfigError;
use suitex_events::store::grants::{Account, GrantCheck, Role, role_sql};
use suitex_events::store::{EventStore, StoreSettings};

#[derive(clap::Args)]
pub struct Args {
    /// The account's role: migrator (DDL, for migrations), writer (INSERT, SELECT on
    /// event_store: the worker) or reader (SELECT on event_store).
    #[arg(long, value_parser = parse_role)]
    role: Role,
    #[command(flatten)]
    account: AccountArgs,
    /// Compare the account's grants with the role and exit 1 if it holds more or less
    /// (changes nothing).
    #[arg(long, conflicts_with = "print")]
    check: bool,
}

/// The account an operator command works on.
#[derive(clap::Args)]
pub struct AccountArgs {
    /// Account name (for a Cloud SQL IAM user, the service account's email without
    /// `.gserviceaccount.com`).
    #[arg(long)]
    user: String,
    /// Host part of the account (`%` for any; Cloud SQL IAM users are `%`).
    #[arg(long, default_value = "%")]
    host: String,
    /// Environment variable holding the password to create the account with, if it does not
    /// exist. Without it the account must exist (an IAM user, or one created earlier); an
    /// existing account keeps its password.
    #[arg(long)]
    password_env: Option<String>,
    /// Print the SQL (password masked) instead of running it.
    #[arg(long)]
    print: bool,
}

/// `suitex-events worker-user`: the writer role for the worker's account.
#[derive(clap::Args)]
pub struct WorkerUserArgs {
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

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = StoreSettings::from_env()?;
    let a = &args.account;
    let account = Account::new(&a.user, &a.host)?;
    if a.print {
        let masked = a.password_env.as_ref().map(|_| "********");
        for sql in role_sql(&settings.database, &account, args.role, masked)? {
            println!("{sql};");
        }
        println!("-- then: REVOKE each role and proxy grant SHOW GRANTS lists; SET DEFAULT ROLE NONE");
        return Ok(ExitCode::SUCCESS);
    }
    let store = EventStore::connect(&settings).await?;
    if args.check {
        let check = store.check_role(&settings.database, &account, args.role).await?;
        print_grants(&check);
        if check.is_exact() {
            println!("{account} holds exactly the {} role on {}", args.role, settings.database);
            return Ok(ExitCode::SUCCESS);
        }
        for extra in &check.extra {
            eprintln!("{account} holds more than the {} role: {extra}", args.role);
        }
        for missing in &check.missing {
            eprintln!("{account} lacks {missing} of the {} role", args.role);
        }
        return Ok(ExitCode::FAILURE);
    }
    let password = match &a.password_env {
        None => None,
        Some(var) => Some(std::env::var(var).ok().filter(|p| !p.is_empty()).ok_or_else(|| {
            ConfigError::new(var, format!("is not set; it holds the password for {account}"))
        })?),
    };
    let check = store.apply_role(&settings.database, &account, args.role, password.as_deref()).await?;
    print_grants(&check);
    println!("{account} holds exactly the {} role on {}, nothing else", args.role, settings.database);
    Ok(ExitCode::SUCCESS)
}

fn print_grants(check: &GrantCheck) {
    for g in &check.grants {
        println!("{g}");
    }
}

/// `worker-user` is `grants --role writer` with the worker's defaults.
pub async fn run_worker_user(args: WorkerUserArgs) -> anyhow::Result<ExitCode> {
    run(Args {
        role: Role::Writer,
        account: AccountArgs {
            user: args.user,
            host: args.host,
            password_env: Some(args.password_env),
            print: args.print,
        },
        check: false,
    })
    .await
}
