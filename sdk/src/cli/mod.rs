//! Command-line front end. Each subcommand lives in its own module; this one parses arguments,
//! sets up logging and the runtime, and turns errors into exit codes.

#[cfg(feature = "worker")]
mod dlq;
mod emit;
#[cfg(feature = "worker")]
mod feed;
#[cfg(feature = "store")]
mod grants;
mod logs;
#[cfg(feature = "store")]
mod migrate;
#[cfg(feature = "worker")]
mod parked;
#[cfg(feature = "consume")]
mod peek;
#[cfg(feature = "worker")]
mod provision;
mod relay;
#[cfg(feature = "worker")]
mod replay;
mod settings;
#[cfg(feature = "store")]
mod tail;
#[cfg(feature = "store")]
mod verify;
#[cfg(feature = "worker")]
mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use suitex_events::Error;

/// Exit code for invalid input (sysexits EX_DATAERR).
pub const EXIT_INVALID: u8 = 65;
/// Exit code for a service that failed or was unreachable (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code for a configuration problem (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "suitex-events",
    version,
    about = "SuiteX event backbone: emit, provision, store and replay events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Emit an event (a JSON object) or a batch (a JSON array) read from a file or stdin.
    Emit(emit::Args),
    /// Spool mode: publish what the spool (SUITEX_EVENTS_SPOOL) holds to events.raw, in order
    /// per key, until SIGTERM.
    Relay(relay::RelayArgs),
    /// Spool mode: `status` (depth, bytes, oldest age, dead) or `list` (the dead events).
    Spool(relay::SpoolArgs),
    /// Create the topics, subscriptions and bucket on the emulators (local/dev only).
    #[cfg(feature = "worker")]
    Provision(provision::Args),
    /// Apply the event store migrations (DB_EVENT_STORE_* settings).
    #[cfg(feature = "store")]
    Migrate(migrate::Args),
    /// Consume events.raw-sub into the event store; feed events.merged from the ledger.
    #[cfg(feature = "worker")]
    Worker(worker::Args),
    /// The events.merged feeder and the dead-letter watch, without events.raw-sub: for when
    /// `php artisan events:work` stores and no Rust worker runs; one of all the feeders leads at
    /// a time.
    #[cfg(feature = "worker")]
    Feed(feed::Args),
    /// Give a database account exactly one role's rights (migrator, writer, reader), revoking
    /// everything else; --check verifies without changing anything.
    #[cfg(feature = "store")]
    Grants(grants::Args),
    /// The writer role for the worker's account (`grants --role writer`, kept for scripts).
    #[cfg(feature = "store")]
    WorkerUser(grants::WorkerUserArgs),
    /// Re-publish stored events to events.merged (by aggregate, tenant or id range).
    #[cfg(feature = "worker")]
    Replay(replay::Args),
    /// Inspect and redrive dead letters on events.dlq-sub.
    #[cfg(feature = "worker")]
    Dlq(dlq::Args),
    /// Keys parked behind a dead letter: list, show, release (redrive) or skip.
    #[cfg(feature = "worker")]
    Parked(parked::Args),
    /// Print the ledger as JSON lines in seq order and follow it (--after-seq, --account,
    /// --aggregate TYPE:ID, --no-follow).
    #[cfg(feature = "store")]
    Tail(tail::Args),
    /// Recompute the ledger's hash chain with the reader role; exit non-zero naming the first
    /// row that does not match (--from-seq, --to-seq, --json).
    #[cfg(feature = "store")]
    Verify(verify::Args),
    /// Print the messages a subscription holds.
    #[cfg(feature = "consume")]
    Peek(peek::Args),
    /// List every setting the backbone reads (environment variables, php.ini directives).
    Settings(settings::Args),
}

impl Command {
    /// Whether this is a long-running service (it logs progress and ignores SIGPIPE).
    fn is_long_running(&self) -> bool {
        #[cfg(feature = "worker")]
        if matches!(self, Command::Worker(_) | Command::Feed(_)) {
            return true;
        }
        matches!(self, Command::Relay(_))
    }

    /// The service name spans are exported under when `OTEL_SERVICE_NAME` is not set.
    fn service_name(&self) -> &'static str {
        #[cfg(feature = "worker")]
        match self {
            Command::Worker(_) => return "suitex-events-worker",
            Command::Feed(_) => return "suitex-events-feed",
            _ => {}
        }
        match self {
            Command::Relay(_) => "suitex-events-relay",
            _ => "suitex-events",
        }
    }
}

/// A token cancelled once SIGTERM or SIGINT arrives (the long-running commands finish what
/// they hold, then exit).
pub(crate) fn signals() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
        cancel.cancel();
    });
    token
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let worker = cli.command.is_long_running();
    if !worker {
        // One-shot commands end quietly when their output is closed early (`suitex-events dlq
        // list | head`), like other Unix tools, instead of panicking on the next print. The
        // worker keeps SIGPIPE ignored, so a closed log pipe never stops it.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // The worker reports its progress; one-shot commands only warnings.
    let default_level = if worker { "info" } else { "warn" };
    let telemetry = match logs::init(default_level, cli.command.service_name()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {}", Error::Runtime(e));
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Emit(args) => emit::run(args).await,
            Command::Relay(args) => relay::relay(args).await,
            Command::Spool(args) => relay::spool(args).await,
            #[cfg(feature = "worker")]
            Command::Provision(args) => provision::run(args).await,
            #[cfg(feature = "store")]
            Command::Migrate(args) => migrate::run(args).await,
            #[cfg(feature = "worker")]
            Command::Worker(args) => worker::run(args).await,
            #[cfg(feature = "store")]
            Command::Grants(args) => grants::run(args).await,
            #[cfg(feature = "store")]
            Command::WorkerUser(args) => grants::run_worker_user(args).await,
            #[cfg(feature = "worker")]
            Command::Replay(args) => replay::run(args).await,
            #[cfg(feature = "worker")]
            Command::Dlq(args) => dlq::run(args).await,
            #[cfg(feature = "worker")]
            Command::Parked(args) => parked::run(args).await,
            #[cfg(feature = "consume")]
            Command::Peek(args) => peek::run(args).await,
            #[cfg(feature = "worker")]
            Command::Feed(args) => feed::run(args).await,
            #[cfg(feature = "store")]
            Command::Tail(args) => tail::run(args).await,
            #[cfg(feature = "store")]
            Command::Verify(args) => verify::run(args).await,
            Command::Settings(args) => settings::run(args).await,
        }
    });
    // Spans still buffered go out before the process ends.
    drop(telemetry);
    match result {
        Ok(code) => code,
        Err(e) => {
            // The SDK's errors already carry their causes in the message; other errors
            // (file access, …) print their context chain.
            match e.downcast_ref::<Error>() {
                Some(sdk) => eprintln!("error: {sdk}"),
                None => eprintln!("error: {e:#}"),
            }
            exit_code(&e)
        }
    }
}

/// The exit code for a failure.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.is::<suitex_events::ValidationError>() {
        return ExitCode::from(EXIT_INVALID);
    }
    if e.is::<suitex_events::ConfigError>() {
        return ExitCode::from(EXIT_CONFIG);
    }
    match e.downcast_ref::<Error>() {
        Some(e) if e.is_validation() => ExitCode::from(EXIT_INVALID),
        Some(e) if e.is_config() => ExitCode::from(EXIT_CONFIG),
        Some(_) => ExitCode::from(EXIT_UNAVAILABLE),
        None => ExitCode::FAILURE,
    }
}
