//! `clientlog append`: validates NDJSON events (one CloudEvents JSON event per line) with the
//! domain decoder and appends the valid ones to the event log in batches.
//!
//! A blocking thread reads and validates lines into bounded batches while the async side
//! appends the previous batch, so memory stays constant whatever the input size. Every rejected
//! line is reported as `line N: <path>: <problem>` on stderr; the summary goes to stdout; the
//! exit status is non-zero if any line was rejected. Appending is idempotent, so running the
//! same file again after a failure is safe: events already in the log count as duplicates.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clientlog_domain::{DecodeError, Event};
use clientlog_eventlog::{
    AnyLog, AppendEvent, AppendOutcome, EventLog, KafkaConfig, KafkaLog, SqliteLog,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

/// Longest accepted line. A longer one is rejected without being held in memory.
const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// NDJSON file of CloudEvents JSON events, or `-` for stdin.
    input: PathBuf,
    /// Data directory of the embedded log (the log is `DIR/events.db`).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./data",
        conflicts_with = "kafka"
    )]
    data: PathBuf,
    /// Append to Kafka instead: bootstrap servers `host:port[,…]`.
    #[arg(long, value_name = "BROKERS", env = "CLIENTLOG_KAFKA")]
    kafka: Option<String>,
    /// Kafka topic (created if missing).
    #[arg(long, default_value = clientlog_eventlog::kafka::DEFAULT_TOPIC)]
    topic: String,
    /// Partitions of the Kafka topic if this command creates it.
    #[arg(long, default_value_t = clientlog_eventlog::kafka::DEFAULT_PARTITIONS)]
    partitions: i32,
    /// Seconds Kafka may take to acknowledge a record before the append fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    kafka_timeout: u64,
    /// Events per append.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Validate only; append nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Lines read and validated together.
struct Chunk {
    events: Vec<AppendEvent>,
    /// The line number of each event, for error messages.
    lines: Vec<u64>,
    rejected: Vec<(u64, DecodeError)>,
    /// Input bytes consumed so far (for the progress bar).
    consumed: u64,
}

#[derive(Default)]
struct Summary {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let log = if args.dry_run {
        None
    } else {
        Some(open_log(&args).await?)
    };

    let (input, total): (Box<dyn Read + Send>, Option<u64>) = if args.input.as_os_str() == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("while opening {}", args.input.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let progress = progress_bar(total);

    let (chunks_tx, mut chunks) = mpsc::channel::<io::Result<Chunk>>(2);
    let batch_size = args.batch_size as usize;
    let reader = tokio::task::spawn_blocking(move || read_chunks(input, batch_size, &chunks_tx));

    let mut summary = Summary::default();
    let outcome: anyhow::Result<()> = async {
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.with_context(|| format!("while reading {}", args.input.display()))?;
            for (line, reason) in &chunk.rejected {
                progress.suspend(|| eprintln!("line {line}: {reason}"));
            }
            summary.rejected += chunk.rejected.len() as u64;
            if let Some(log) = &log {
                if !chunk.events.is_empty() {
                    let outcomes = log.append(&chunk.events).await.with_context(|| {
                        format!(
                            "while appending lines {}–{} (appending is idempotent: run the \
                             same input again to finish)",
                            chunk.lines.first().copied().unwrap_or_default(),
                            chunk.lines.last().copied().unwrap_or_default()
                        )
                    })?;
                    for outcome in outcomes {
                        match outcome {
                            AppendOutcome::Appended(_) => summary.accepted += 1,
                            AppendOutcome::Duplicate(_) => summary.duplicates += 1,
                        }
                    }
                }
            } else {
                summary.accepted += chunk.events.len() as u64;
            }
            progress.set_position(chunk.consumed);
            progress.set_message(format!(
                "{} accepted, {} rejected",
                summary.accepted, summary.rejected
            ));
        }
        Ok(())
    }
    .await;
    // Stop the reader (if we bailed out early) before waiting for it.
    drop(chunks);
    progress.finish_and_clear();
    let read_result = reader.await.context("while reading the input")?;
    if let Some(log) = log {
        log.close().await;
    }
    outcome?;
    read_result?;

    if args.dry_run {
        println!(
            "dry run: {} valid, {} rejected; nothing appended",
            summary.accepted, summary.rejected
        );
    } else {
        println!(
            "accepted {}, duplicates {}, rejected {}",
            summary.accepted, summary.duplicates, summary.rejected
        );
    }
    if summary.rejected > 0 {
        anyhow::bail!("{} line(s) were rejected", summary.rejected);
    }
    Ok(())
}

async fn open_log(args: &Args) -> anyhow::Result<AnyLog> {
    Ok(match &args.kafka {
        Some(brokers) => {
            let config = KafkaConfig {
                partitions: args.partitions,
                message_timeout: Duration::from_secs(args.kafka_timeout.max(1)),
                ..KafkaConfig::new(brokers).with_topic(&args.topic)
            };
            AnyLog::Kafka(
                KafkaLog::connect(config)
                    .await
                    .with_context(|| format!("while connecting to Kafka at {brokers}"))?,
            )
        }
        None => {
            let path = args.data.join("events.db");
            AnyLog::Embedded(
                SqliteLog::open_path(&path)
                    .await
                    .with_context(|| format!("while opening the event log {}", path.display()))?,
            )
        }
    })
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} · {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Reads `input` line by line on a blocking thread, validating each line, and sends chunks of
/// up to `batch_size` valid events. Stops early when the receiver is gone.
fn read_chunks(
    input: Box<dyn Read + Send>,
    batch_size: usize,
    out: &mpsc::Sender<io::Result<Chunk>>,
) -> anyhow::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut chunk = new_chunk(batch_size);
    let mut line_no: u64 = 0;
    let mut consumed: u64 = 0;
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let read = match read_line(&mut reader, &mut buf) {
            Ok(read) => read,
            Err(err) => {
                let _ = out.blocking_send(Err(err));
                return Ok(());
            }
        };
        let Some(read) = read else { break };
        line_no += 1;
        consumed += read.consumed;
        if read.too_long {
            chunk.rejected.push((
                line_no,
                DecodeError::new(
                    "$",
                    format!("the line is longer than {MAX_LINE_BYTES} bytes"),
                ),
            ));
        } else {
            let line = trim_line_end(&buf);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match Event::decode(line) {
                Ok(event) => {
                    chunk
                        .events
                        .push(AppendEvent::from_decoded(line.to_vec(), &event));
                    chunk.lines.push(line_no);
                }
                Err(reason) => chunk.rejected.push((line_no, reason)),
            }
        }
        if chunk.events.len() >= batch_size || chunk.rejected.len() >= batch_size {
            chunk.consumed = consumed;
            let full = std::mem::replace(&mut chunk, new_chunk(batch_size));
            if out.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    chunk.consumed = consumed;
    let _ = out.blocking_send(Ok(chunk));
    Ok(())
}

fn new_chunk(batch_size: usize) -> Chunk {
    Chunk {
        events: Vec::with_capacity(batch_size),
        lines: Vec::with_capacity(batch_size),
        rejected: Vec::new(),
        consumed: 0,
    }
}

struct LineRead {
    consumed: u64,
    too_long: bool,
}

/// Reads one line into `buf` (without holding more than `MAX_LINE_BYTES` of it); `None` at the
/// end of the input.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<LineRead>> {
    let limit = MAX_LINE_BYTES as u64 + 1;
    let read = reader.by_ref().take(limit).read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(None);
    }
    let mut consumed = read as u64;
    let ended = buf.last() == Some(&b'\n');
    if ended || read < limit as usize {
        return Ok(Some(LineRead {
            consumed,
            too_long: buf.len() > MAX_LINE_BYTES + usize::from(ended),
        }));
    }
    // Too long: skip to the end of the line without keeping it.
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                consumed += at as u64 + 1;
                break;
            }
            None => {
                let n = available.len();
                reader.consume(n);
                consumed += n as u64;
            }
        }
    }
    buf.clear();
    Ok(Some(LineRead {
        consumed,
        too_long: true,
    }))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
