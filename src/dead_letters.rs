//! `clientlog dead-letters list | retry ID | skip ID`: what the projector could not decode,
//! and resolving it. `retry` decodes the stored bytes again (after an upgrade that understands
//! them) and applies the event and the customer's held events; `skip` releases the held events
//! without it. Every action is recorded with its outcome.

use anyhow::Context;
use clientlog_projector::{resolve_dead_letter, Resolution, Resolve};

use crate::store_args::{parse_time, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// List the dead letters of the live version, newest first, with their actions.
    List,
    /// Decode the record again and, if valid now, apply it and release the held events.
    Retry {
        id: i64,
        /// Evaluate as of this time instead of the clock.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        as_of: Option<i64>,
    },
    /// Give up on the record and release the customer's held events.
    Skip {
        id: i64,
        /// Evaluate as of this time instead of the clock.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        as_of: Option<i64>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let projector = args.store.projector().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (id, action, as_of) = match args.action {
        Action::List => {
            let store = projector.store();
            let letters = store
                .dead_letters(projector.version())
                .await
                .context("while listing dead letters")?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                println!(
                    "{}\t{}@{}\t{}\t{}\theld {}\t{}",
                    letter.id,
                    letter.log_partition,
                    letter.log_offset,
                    letter.customer_id.as_deref().unwrap_or("-"),
                    letter.status,
                    letter.held,
                    letter.reason
                );
                for action in store
                    .dead_letter_actions(letter.id)
                    .await
                    .context("while listing dead-letter actions")?
                {
                    println!(
                        "\t{}\t{}\t{}\treleased {}",
                        action.at, action.action, action.outcome, action.released
                    );
                }
            }
            projector.store().close().await;
            return Ok(());
        }
        Action::Retry { id, as_of } => (id, Resolve::Retry, as_of.unwrap_or(now)),
        Action::Skip { id, as_of } => (id, Resolve::Skip, as_of.unwrap_or(now)),
    };
    let resolution = resolve_dead_letter(&projector, id, action, as_of)
        .await
        .with_context(|| format!("while resolving dead letter {id}"))?;
    projector.store().close().await;
    match resolution {
        Resolution::Released { applied, released } => {
            println!("dead letter {id}: resolved; {released} held events released, {applied} events applied");
            Ok(())
        }
        Resolution::StillInvalid { reason } => {
            anyhow::bail!("dead letter {id}: still not a valid event ({reason}); it stays open")
        }
    }
}
