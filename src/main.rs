//! The `clientlog` command line: parses arguments and hands each command to its module.
//! Logic lives in the library crates; each command module only wires configuration to them.

use clap::{Parser, Subcommand};

mod append;
mod demo;

#[derive(Parser)]
#[command(name = "clientlog", version, about = "Event-sourced customer ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate NDJSON events and append the valid ones to the event log.
    Append(append::Args),
    /// Generate a realistic, deterministic demo history as NDJSON.
    Demo(demo::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Append(args) => append::run(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}
