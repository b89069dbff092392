//! `clientlog token create`: adds an API token to the token file (stored as its SHA-256) and
//! prints the secret once.

use std::path::PathBuf;

use anyhow::Context;
use clientlog_api::{Scope, TokenFile};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it (only its hash is stored).
    Create(CreateArgs),
    /// List the configured tokens (names and scopes, never secrets).
    List(FileArgs),
}

#[derive(clap::Args, Debug)]
pub struct FileArgs {
    /// Data directory; the token file is `DIR/tokens.toml` unless --tokens says otherwise.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    pub data: PathBuf,
    /// The token file.
    #[arg(long, value_name = "FILE", env = "CLIENTLOG_TOKENS")]
    pub tokens: Option<PathBuf>,
}

impl FileArgs {
    pub fn path(&self) -> PathBuf {
        self.tokens
            .clone()
            .unwrap_or_else(|| self.data.join("tokens.toml"))
    }
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    #[command(flatten)]
    file: FileArgs,
    /// A name for the token (who or what uses it).
    #[arg(long)]
    name: String,
    /// Comma-separated scopes: append, read, audit, analyze, admin.
    #[arg(long, value_delimiter = ',', value_parser = parse_scope, required = true)]
    scopes: Vec<Scope>,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s.trim())
        .ok_or_else(|| format!("{s:?} is not a scope: use append, read, audit, analyze, admin"))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Create(args) => {
            let path = args.file.path();
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let token = TokenFile::create(&path, &args.name, &args.scopes, now)
                .with_context(|| format!("while adding a token to {}", path.display()))?;
            eprintln!(
                "token {:?} added to {} (the secret is not stored; keep it now):",
                args.name,
                path.display()
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::List(file) => {
            let path = file.path();
            let tokens = TokenFile::load(&path)
                .with_context(|| format!("while reading {}", path.display()))?;
            if tokens.tokens.is_empty() {
                println!("no tokens in {}", path.display());
            }
            for t in tokens.tokens {
                println!("{}\t{}\t{}", t.name, t.scopes.join(","), t.created_at);
            }
            Ok(())
        }
    }
}
