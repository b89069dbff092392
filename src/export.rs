//! `clientlog export customers [--as-of T] [--format csv|ndjson] [--out FILE]`: every customer
//! card of the live projection version, for BI tools and spreadsheets, in constant memory —
//! the `customers` table is read in keyset pages by id, each page written out before the next
//! is read.
//!
//! With `--as-of T` each card is the verdict at business time T, folded from the customer's
//! audit copy by [`clientlog_projector::replay::replay`] — the function `clientlog replay`
//! uses, so the two agree by construction. Customers with no event by T are left out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clientlog_projector::replay::{replay, ReplayAt};
use clientlog_readstore::{AuditRow, FACTOR_COLUMNS};
use serde_json::Value;

use crate::store_args::{parse_time, StoreArgs};

/// Customers per page.
const PAGE: i64 = 1_000;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Every customer card.
    Customers(CustomersArgs),
}

#[derive(clap::Args, Debug)]
struct CustomersArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Each card as of this business time (replayed from the audit copy): RFC 3339,
    /// YYYY-MM-DD or Unix seconds. Default: the stored cards.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    as_of: Option<i64>,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

/// Card fields after the factor columns, in this order.
const TAIL_COLUMNS: [&str; 15] = [
    "segment",
    "region",
    "channel",
    "stage_since",
    "open_complaints",
    "active_contracts",
    "last_purchase_on",
    "last_interaction_on",
    "last_activity_on",
    "currency",
    "sales_3_months_minor",
    "sales_12_months_minor",
    "orders",
    "events",
    "as_of_day",
];

pub async fn run(args: Args) -> anyhow::Result<()> {
    let What::Customers(args) = args.what;
    let store = args.store.open_store().await?;
    let given = args.store.load_policies()?;
    // As of T, the cards are what `replay --as-of T` says: under the policies live at T.
    let policies = match args.as_of {
        Some(as_of) => clientlog_projector::replay::policies_live_at(&store, as_of, &given)
            .await
            .context("while reading the policies live then")?,
        None => given,
    };
    let version = store
        .live_version()
        .await
        .context("while reading the live projection version")?
        .map(|v| v.version);
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("while creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);
    if args.format == Format::Csv {
        out.write_all(csv_header().as_bytes())?;
    }
    let mut written = 0u64;
    let mut after = String::new();
    while let Some(version) = version {
        let rows = store
            .customers_page(version, &after, PAGE)
            .await
            .context("while reading customers")?;
        let Some(last) = rows.last() else { break };
        after.clone_from(&last.customer_id);
        let audit = match args.as_of {
            Some(_) => {
                let ids: Vec<String> = rows.iter().map(|r| r.customer_id.clone()).collect();
                store
                    .customer_events_of(&ids)
                    .await
                    .context("while reading the audit copy")?
            }
            None => Vec::new(),
        };
        let mut audit = audit.as_slice();
        for row in &rows {
            let card: Value = match args.as_of {
                None => {
                    if args.format == Format::Ndjson {
                        out.write_all(row.card.as_bytes())?;
                        out.write_all(b"\n")?;
                        written += 1;
                        continue;
                    }
                    serde_json::from_str(&row.card)
                        .with_context(|| format!("while reading the card of {}", row.customer_id))?
                }
                Some(as_of) => {
                    let n = audit
                        .iter()
                        .take_while(|e| e.customer_id == row.customer_id)
                        .count();
                    let (mine, rest): (&[AuditRow], _) = audit.split_at(n);
                    audit = rest;
                    let at = ReplayAt {
                        as_of,
                        known_at_nanos: None,
                    };
                    let replayed = replay(&row.customer_id, mine, &policies, at)
                        .with_context(|| format!("while replaying {}", row.customer_id))?;
                    match replayed.card {
                        Some(card) => serde_json::to_value(&card)?,
                        None => continue,
                    }
                }
            };
            match args.format {
                Format::Ndjson => {
                    serde_json::to_writer(&mut out, &card)?;
                    out.write_all(b"\n")?;
                }
                Format::Csv => out.write_all(csv_record(&card).as_bytes())?,
            }
            written += 1;
        }
    }
    out.flush().context("while writing the export")?;
    store.close().await;
    eprintln!("export: {written} customers");
    Ok(())
}

fn csv_header() -> String {
    let mut columns: Vec<String> = [
        "id",
        "name",
        "owner",
        "grade",
        "score",
        "stage",
        "risk",
        "risk_band",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for factor in FACTOR_COLUMNS {
        for part in ["raw", "sub_score", "contribution"] {
            columns.push(format!("{factor}_{part}"));
        }
    }
    columns.extend(TAIL_COLUMNS.iter().map(|s| s.to_string()));
    columns.join(",") + "\n"
}

/// One CSV line (RFC 4180 quoting) of a card's JSON.
fn csv_record(card: &Value) -> String {
    let mut fields: Vec<String> = [
        "id",
        "name",
        "owner",
        "grade",
        "score",
        "stage",
        "risk",
        "risk_band",
    ]
    .iter()
    .map(|k| field(&card[*k]))
    .collect();
    for i in 0..FACTOR_COLUMNS.len() {
        let factor = &card["factors"][i];
        for part in ["raw", "sub_score", "contribution"] {
            fields.push(field(&factor[part]));
        }
    }
    fields.extend(TAIL_COLUMNS.iter().map(|k| field(&card[*k])));
    fields.join(",") + "\n"
}

fn field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => quote(s),
        Value::Array(items) => items.len().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(_) => quote(&value.to_string()),
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
