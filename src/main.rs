//! The `clientlog` command line: parses arguments and hands each command to its module.
//! Logic lives in the library crates; each command module only wires configuration to them.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "clientlog", version, about = "Event-sourced customer ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
