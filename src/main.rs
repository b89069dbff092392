//! The `clientlog` command line: parses arguments and hands each command to its module.
//! Logic lives in the library crates; each command module only wires configuration to them.

use clap::{Parser, Subcommand};

mod api;
mod append;
mod bench;
mod dead_letters;
mod demo;
mod export;
mod projector;
mod rebuild;
mod reevaluate;
mod replay;
mod serve;
mod signals;
mod simulate;
mod store_args;
mod token;
mod verify;
mod versions;

#[derive(Parser)]
#[command(name = "clientlog", version, about = "Event-sourced customer ledger")]
struct Cli {
    /// Log lines as human-readable text or as JSON objects.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "CLIENTLOG_LOG_FORMAT"
    )]
    log_format: store_args::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate NDJSON events and append the valid ones to the event log.
    Append(append::Args),
    /// Generate a realistic, deterministic demo history as NDJSON.
    Demo(demo::Args),
    /// Fold the event log into the read models (exactly-once), until SIGTERM/SIGINT.
    Projector(projector::Args),
    /// Re-evaluate every customer at a business time and record the transitions.
    Reevaluate(reevaluate::Args),
    /// List, retry or skip records the projector could not decode.
    #[command(name = "dead-letters")]
    DeadLetters(dead_letters::Args),
    /// Log, projector and HTTP API in one process (the embedded default); `--demo` loads demo data.
    Serve(serve::Args),
    /// The HTTP API alone, over the log and read store that projectors write elsewhere.
    Api(api::Args),
    /// Manage API bearer tokens (stored hashed).
    Token(token::Args),
    /// A customer's verdict as of business time T from the events recorded by T2, as JSON.
    Replay(replay::Args),
    /// Stream every customer card (optionally as of a business time) as CSV or NDJSON.
    Export(export::Args),
    /// Check the audit copy's hash chains and every read-model row against the event log.
    Verify(verify::Args),
    /// What-if grading of every customer under another grading policy (no replay).
    Simulate(simulate::Args),
    /// Build a new projection version from the whole log beside the live one, then promote it.
    Rebuild(rebuild::Args),
    /// List, promote, drop or compare projection versions.
    Versions(versions::Args),
    /// Measure every performance figure beside its limit; print a table and write JSON.
    Bench(bench::Args),
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    store_args::init_tracing(cli.log_format);
    match cli.command {
        Command::Append(args) => append::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Projector(args) => projector::run(args).await,
        Command::Reevaluate(args) => reevaluate::run(args).await,
        Command::DeadLetters(args) => dead_letters::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Api(args) => api::run(args).await,
        Command::Token(args) => token::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Rebuild(args) => rebuild::run(args).await,
        Command::Versions(args) => versions::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
