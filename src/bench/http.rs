//! The HTTP figures, on a real loopback socket: the embedded deployment of `clientlog serve`
//! (log, live projector and API in this process, with a bearer token as in production) over a
//! demo book of customers, loaded by [`super::load`] from its own thread.
//!
//! * `GET /v1/customers/{id}`, a filtered and sorted list of 50, and single-event
//!   `POST /v1/events`, at 64 connections, each beside `GET /healthz` at the same concurrency.
//! * append → visible at a steady 5 000 events/s: each POST's answer (accepted, durable) is
//!   timestamped, and so is the moment the projector's checkpoint — committed in the same
//!   transaction as the read-model rows the API serves — covers its events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clientlog_api::{ApiConfig, Auth, Limits, Scope, TokenFile};
use clientlog_eventlog::{AnyLog, SqliteLog};
use clientlog_projector::{Projector, ProjectorConfig};
use clientlog_readstore::{ReadStore, StoreConfig};
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::figures::{append_all, purchase_json};
use super::load::{self, LoadResult};
use super::{Bench, Figure, Stats, Target};

/// Connections of the request figures.
const CONNECTIONS: usize = 64;

/// `clientlog serve` in this process, on a free loopback port.
pub struct Server {
    pub address: SocketAddr,
    pub token: String,
    /// Customers with a card.
    pub customers: Arc<Vec<String>>,
    projector: Projector,
    log: SqliteLog,
    shutdown: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    projecting:
        JoinHandle<Result<clientlog_projector::RunStats, clientlog_projector::ProjectorError>>,
}

impl Server {
    /// Generates `customers` over the `months` up to this one, appends them, projects them
    /// (until caught up) and starts the live projector and the API.
    async fn start(b: &Bench) -> anyhow::Result<Self> {
        let dir = b.path("serve");
        std::fs::create_dir_all(&dir)?;
        let started = Instant::now();
        let months = b.sizes.http_months;
        let log = SqliteLog::open_path(dir.join("events.db")).await?;
        // Month by month, so that a big book is never all in memory.
        let mut generator = clientlog_demo::Generator::new(clientlog_demo::Config {
            customers: b.sizes.http_customers,
            months,
            seed: 1,
            start: months_back(months)?,
        })?;
        let mut appended = 0;
        while let Some(events) = generator.next_batch() {
            appended += append_all(&log, &events).await?.len();
        }
        let store_config = StoreConfig::Sqlite {
            path: dir.join("readstore.db"),
        };
        let store = ReadStore::open(&store_config).await?;
        let projector = Projector::new(store, clientlog_domain::Policies::defaults()).await?;
        projector
            .run(
                &log,
                &ProjectorConfig {
                    reevaluate_every: None,
                    until_caught_up: true,
                    ..ProjectorConfig::default()
                },
                CancellationToken::new(),
            )
            .await
            .context("while projecting the API's customers")?;
        let customers = ids(projector.version(), &store_config).await?;
        anyhow::ensure!(!customers.is_empty(), "no customers were projected");
        eprintln!(
            "bench: {} customers ({appended} events) appended and projected in {:.1} s",
            customers.len(),
            started.elapsed().as_secs_f64()
        );

        let shutdown = CancellationToken::new();
        // The live projector, as `clientlog serve` runs it.
        let projecting = {
            let (projector, log, stop) = (projector.clone(), log.clone(), shutdown.child_token());
            tokio::spawn(async move {
                let config = ProjectorConfig {
                    reevaluate_every: None,
                    ..ProjectorConfig::default()
                };
                projector.run(&log, &config, stop).await
            })
        };
        let tokens = dir.join("tokens.toml");
        let token = TokenFile::create(&tokens, "bench", &[Scope::Read, Scope::Append], now())
            .context("while creating the bench's API token")?;
        let auth = Auth::new(&TokenFile::load(&tokens)?);
        let config = ApiConfig {
            log: AnyLog::Embedded(log.clone()),
            store: store_config,
            policies: clientlog_domain::Policies::defaults(),
            auth,
            limits: Limits::default(),
            cors_origins: Vec::new(),
            ready_max_lag: 10_000,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (address, serve) =
            clientlog_api::build(config, listener, shutdown.clone().cancelled_owned())
                .await
                .context("while starting the API")?;
        let serving = tokio::spawn(serve);
        Ok(Self {
            address,
            token,
            customers: Arc::new(customers),
            projector,
            log,
            shutdown,
            serving,
            projecting,
        })
    }

    /// Stops the API (in-flight requests finish) and the projector, then closes everything.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.serving.await??;
        self.projecting.await??;
        self.projector.store().close().await;
        self.log.close().await;
        Ok(())
    }
}

/// The first month of a history of `months` that ends this month.
fn months_back(months: u32) -> anyhow::Result<clientlog_demo::YearMonth> {
    let now = time::OffsetDateTime::now_utc();
    let index =
        i64::from(now.year()) * 12 + i64::from(u8::from(now.month()) - 1) - i64::from(months - 1);
    clientlog_demo::YearMonth::new(
        index.div_euclid(12) as i32,
        (index.rem_euclid(12) + 1) as u8,
    )
    .context("the demo's first month")
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Every projected customer id of `version`.
async fn ids(version: i64, config: &StoreConfig) -> anyhow::Result<Vec<String>> {
    let StoreConfig::Sqlite { path } = config else {
        anyhow::bail!("the API figures use the embedded store");
    };
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await?;
    let ids = sqlx::query_scalar("SELECT customer_id FROM customers WHERE version = ?")
        .bind(version)
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    Ok(ids)
}

/// The server, started on first use.
async fn server(b: &mut Bench) -> anyhow::Result<&Server> {
    if b.server.is_none() {
        b.server = Some(Server::start(b).await?);
    }
    b.server.as_ref().context("server")
}

/// Requests per second and p99 (ms) of `runs` closed-loop runs after a warm-up.
async fn load_runs(
    address: SocketAddr,
    runs: usize,
    secs: f64,
    make: load::MakeRequest,
) -> anyhow::Result<(Stats, Stats, u64)> {
    let duration = Duration::from_secs_f64(secs);
    load::closed_loop(address, CONNECTIONS, duration, make.clone()).await?;
    let (mut rps, mut p99, mut bad) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let r: LoadResult = load::closed_loop(address, CONNECTIONS, duration, make.clone()).await?;
        anyhow::ensure!(r.ok > 0, "no request was answered with 2xx");
        rps.push(r.rps());
        p99.push(r.quantile_ms(0.99));
        bad += r.bad_status;
    }
    Ok((Stats::of(rps), Stats::of(p99), bad))
}

/// A random customer of `customers`.
fn any(customers: &[String]) -> &str {
    &customers[rand::random::<usize>() % customers.len()]
}

/// The card lookup, the list and single-event appends at 64 connections, beside `/healthz`.
pub fn requests(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let (runs, secs) = (b.sizes.runs, b.sizes.http_secs);
        let server = server(b).await?;
        let (address, token, customers) = (
            server.address,
            server.token.clone(),
            server.customers.clone(),
        );
        let n = customers.len();
        let t = token.clone();
        let (health, health_p99, _) = load_runs(
            address,
            runs,
            secs,
            Arc::new(move |_: usize, _: u64| load::get("/healthz", &t)),
        )
        .await?;
        let t = token.clone();
        let c = customers.clone();
        let card = load_runs(
            address,
            runs,
            secs,
            Arc::new(move |_: usize, _: u64| load::get(&format!("/v1/customers/{}", any(&c)), &t)),
        )
        .await?;
        let t = token.clone();
        let list = load_runs(
            address,
            runs,
            secs,
            Arc::new(move |_: usize, _: u64| {
                load::get("/v1/customers?grade=B&sort=risk&limit=50", &t)
            }),
        )
        .await?;
        let t = token.clone();
        let c = customers.clone();
        let post = load_runs(
            address,
            runs,
            secs,
            Arc::new(move |_: usize, n: u64| {
                load::post_json("/v1/events", &t, &purchase_json(any(&c), n))
            }),
        )
        .await?;
        let row = |name: &str, unit, target, (value, p99, bad): (Stats, Stats, u64)| {
            let mut f = Figure::new(name, unit, target)
                .value(value)
                .p99(p99)
                .limit("GET /healthz, same concurrency", health.clone())
                .limit_p99(health_p99.clone());
            let mut note = format!("{CONNECTIONS} connections, {n} customers");
            if bad > 0 {
                note.push_str(&format!(", {bad} non-2xx answers"));
            }
            f = f.note(note);
            f
        };
        Ok(vec![
            row(
                "GET /v1/customers/{id}",
                "req/s",
                Target {
                    at_least: Some(15_000.0),
                    p99_below_ms: Some(5.0),
                    ..Target::text("≥ 15 k/s, p99 < 5 ms")
                },
                card,
            ),
            row(
                "GET /v1/customers?grade=B&sort=risk&limit=50",
                "req/s",
                Target {
                    at_least: Some(3_000.0),
                    p99_below_ms: Some(20.0),
                    ..Target::text("≥ 3 k/s, p99 < 20 ms")
                },
                list,
            ),
            row(
                "POST /v1/events, one event each",
                "req/s",
                Target {
                    at_least: Some(15_000.0),
                    p99_below_ms: Some(20.0),
                    ..Target::text("≥ 15 k/s, p99 < 20 ms")
                },
                post,
            ),
        ])
    })
}

/// Events per second of the append → visible figure.
const VISIBLE_RATE: f64 = 5_000.0;
/// Events per POST of that figure: 500 POSTs/s of 10 events, so the figure measures the
/// path to visibility rather than a saturated request path (that is the POST figure's).
const VISIBLE_BATCH: usize = 10;
/// Connections that share the schedule.
const VISIBLE_CONNECTIONS: usize = 16;

/// Appends at a steady 5 000 events/s; the p99 of POST answered → visible in the read store.
pub fn append_visible(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let (runs, secs) = (b.sizes.runs, b.sizes.visible_secs);
        let server = server(b).await?;
        let mut p99 = Vec::new();
        let mut p50 = Vec::new();
        let mut rates = Vec::new();
        for run in 0..=runs {
            // Each run starts with nothing left to project (the POST figure leaves a backlog).
            caught_up(server).await?;
            let r = visible_run(server, Duration::from_secs_f64(secs)).await?;
            // Run 0 is the warm-up.
            if run > 0 {
                p99.push(load::quantile_ms(&r.latencies_us, 0.99));
                p50.push(load::quantile_ms(&r.latencies_us, 0.5));
                rates.push(r.rps() * VISIBLE_BATCH as f64);
            }
        }
        let rate = Stats::of(rates);
        let p50 = Stats::of(p50);
        Ok(vec![Figure::new(
            "append → visible, 5 k events/s steady",
            "ms",
            Target {
                below: Some(100.0),
                ..Target::text("p99 < 100 ms")
            },
        )
        .value(Stats::of(p99))
        .note(format!(
            "p99 shown; POSTs of {VISIBLE_BATCH} events on {VISIBLE_CONNECTIONS} connections; \
             achieved {:.0} events/s; p50 {:.1} ms",
            rate.median, p50.median
        ))])
    })
}

/// Waits (at most 5 minutes) until the projector has folded everything appended so far.
async fn caught_up(server: &Server) -> anyhow::Result<()> {
    use clientlog_eventlog::EventLog;
    let end = server.log.high_water_marks().await?;
    let started = Instant::now();
    loop {
        let checkpoints = server
            .projector
            .store()
            .checkpoints(server.projector.version())
            .await?;
        if end
            .iter()
            .all(|(p, &next)| checkpoints.get(p).is_some_and(|&c| c + 1 >= next))
        {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the projector did not catch up within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One steady run: each POST's answer time, and when the checkpoint covered its last event.
async fn visible_run(server: &Server, duration: Duration) -> anyhow::Result<LoadResult> {
    let pending: Arc<Mutex<VecDeque<(i64, Instant)>>> = Arc::default();
    let done = CancellationToken::new();
    let store = server.projector.store().clone();
    let version = server.projector.version();
    // Polls the checkpoint every millisecond; an answer's latency ends at the first poll
    // that sees its events committed.
    let poller = {
        let (pending, done) = (pending.clone(), done.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut drained_at = None;
            loop {
                let checkpoint = store
                    .checkpoints(version)
                    .await?
                    .get(&0)
                    .copied()
                    .unwrap_or(0);
                let seen = Instant::now();
                {
                    let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                    pending.retain(|&(offset, accepted)| {
                        if offset <= checkpoint {
                            latencies.push(seen.saturating_duration_since(accepted));
                            false
                        } else {
                            true
                        }
                    });
                    if done.is_cancelled() {
                        if pending.is_empty() {
                            break;
                        }
                        let since = *drained_at.get_or_insert(seen);
                        anyhow::ensure!(
                            seen - since < Duration::from_secs(30),
                            "{} appended events were not visible 30 s after the last append",
                            pending.len()
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::Ok(latencies)
        })
    };
    let sent = {
        let (address, token, customers, pending) = (
            server.address,
            server.token.clone(),
            server.customers.clone(),
            pending.clone(),
        );
        tokio::task::spawn_blocking(move || -> anyhow::Result<LoadResult> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(steady(address, token, customers, pending, duration))
        })
        .await
        .context("the load generator panicked")
    };
    done.cancel();
    let latencies = poller.await.context("the poller panicked")??;
    let sent = sent??;
    let mut result = LoadResult {
        ok: sent.ok,
        bad_status: sent.bad_status,
        elapsed: sent.elapsed,
        latencies_us: latencies
            .iter()
            .map(|d| d.as_micros().min(u128::from(u32::MAX)) as u32)
            .collect(),
    };
    anyhow::ensure!(
        result.bad_status == 0,
        "{} appends failed",
        result.bad_status
    );
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// POSTs of [`VISIBLE_BATCH`] events on a fixed schedule ([`VISIBLE_RATE`] events/s over
/// [`VISIBLE_CONNECTIONS`] connections); records each answer's last position and time.
async fn steady(
    address: SocketAddr,
    token: String,
    customers: Arc<Vec<String>>,
    pending: Arc<Mutex<VecDeque<(i64, Instant)>>>,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let interval = Duration::from_secs_f64(VISIBLE_BATCH as f64 / VISIBLE_RATE);
    let started = tokio::time::Instant::now();
    let posts = (duration.as_secs_f64() / interval.as_secs_f64()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..VISIBLE_CONNECTIONS as u64 {
        let stream = load::connect(address).await?;
        let (token, customers, pending) = (token.clone(), customers.clone(), pending.clone());
        tasks.spawn(async move {
            let mut conn = load::Connection::new(stream);
            let mut result = LoadResult::default();
            let mut k = c;
            while k < posts {
                tokio::time::sleep_until(started + interval * k as u32).await;
                let body = format!(
                    "[{}]",
                    (0..VISIBLE_BATCH)
                        .map(|i| purchase_json(any(&customers), k * 100 + i as u64))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let sent = Instant::now();
                let status = conn
                    .exchange(&load::post_json("/v1/events", &token, &body))
                    .await?;
                let accepted = Instant::now();
                load::record(&mut result, status, accepted - sent);
                if (200..300).contains(&status) {
                    let answer: serde_json::Value = serde_json::from_slice(&conn.body)?;
                    let last = answer["results"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["position"]["offset"].as_i64())
                        .max()
                        .context("an append answer without positions")?;
                    pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back((last, accepted));
                }
                k += VISIBLE_CONNECTIONS as u64;
            }
            anyhow::Ok(result)
        });
    }
    let mut total = LoadResult::default();
    while let Some(done) = tasks.join_next().await {
        let r = done.context("a load connection panicked")??;
        total.ok += r.ok;
        total.bad_status += r.bad_status;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}
