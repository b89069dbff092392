//! `clientlog api`: the HTTP API alone, over the embedded log and read store of `--data DIR`
//! or over Kafka (`--kafka`) and PostgreSQL (`--database-url`), with projectors running
//! elsewhere. The HTTP flags here are shared with `clientlog serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clientlog_api::{ApiConfig, Auth, Limits, TokenFile};
use clientlog_eventlog::AnyLog;
use clientlog_readstore::StoreConfig;
use tokio_util::sync::CancellationToken;

use crate::store_args::{LogArgs, StoreArgs};

#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Address to listen on. Without API tokens only a loopback address is allowed.
    #[arg(
        long,
        value_name = "ADDR",
        env = "CLIENTLOG_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// The token file (default `DIR/tokens.toml`); create tokens with `clientlog token create`.
    #[arg(long, value_name = "FILE", env = "CLIENTLOG_TOKENS")]
    pub tokens: Option<std::path::PathBuf>,
    /// Allow this origin to call the API from a browser (repeatable; `*` for any).
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "CLIENTLOG_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Largest request body, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Longest a request may take, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Longest a read waits for its X-Consistency-Token, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub consistency_wait_ms: u64,
    /// /readyz fails while a partition lags more than this many events.
    #[arg(long, value_name = "EVENTS", default_value_t = 10_000)]
    pub ready_max_lag: i64,
}

impl HttpArgs {
    /// The token check, and a note for the operator on how it is set up.
    pub fn auth(&self, store: &StoreArgs) -> anyhow::Result<Auth> {
        let path = self
            .tokens
            .clone()
            .unwrap_or_else(|| store.data.join("tokens.toml"));
        let file = TokenFile::load(&path)
            .with_context(|| format!("while loading API tokens from {}", path.display()))?;
        let auth = Auth::new(&file);
        if auth.is_open() {
            eprintln!(
                "clientlog: no API tokens in {}: authentication is OFF and the API listens on \
                 loopback only (create one with `clientlog token create --name NAME --scopes \
                 read,append`)",
                path.display()
            );
        } else {
            eprintln!(
                "clientlog: {} API token(s) from {}",
                file.tokens.len(),
                path.display()
            );
        }
        Ok(auth)
    }

    pub fn config(&self, store: &StoreArgs, log: AnyLog, auth: Auth) -> anyhow::Result<ApiConfig> {
        Ok(ApiConfig {
            log,
            store: StoreConfig::from_args(&store.data, store.database_url.as_deref()),
            policies: store.load_policies()?,
            auth,
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
                consistency_wait: Duration::from_millis(self.consistency_wait_ms),
                ..Limits::default()
            },
            cors_origins: self.cors_origins.clone(),
            ready_max_lag: self.ready_max_lag,
        })
    }

    /// Binds, builds and returns the bound address and the serve future.
    pub async fn start(
        &self,
        config: ApiConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
        if config.auth.is_open() && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {} without API tokens: create one with `clientlog token \
                 create --name NAME --scopes read,append` or use --listen 127.0.0.1:PORT",
                self.listen
            );
        }
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("while binding {}", self.listen))?;
        clientlog_api::build(config, listener, shutdown)
            .await
            .context("while starting the API")
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    http: HttpArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let auth = args.http.auth(&args.store)?;
    let log = args.log.open(&args.store).await?;
    let config = args.http.config(&args.store, log.clone(), auth)?;
    let shutdown = CancellationToken::new();
    let (address, serve) = args
        .http
        .start(config, shutdown.clone().cancelled_owned())
        .await?;
    println!("clientlog: API listening on http://{address}");
    let signals = tokio::spawn(crate::signals::cancel_on_signal(shutdown.clone()));
    let served = serve.await;
    shutdown.cancel();
    signals
        .await
        .context("while stopping the signal handler")??;
    log.close().await;
    served.context("while serving the API")
}
