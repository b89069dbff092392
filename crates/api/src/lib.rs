//! clientlog's HTTP API: a thin axum layer over the event log (appends) and the read store
//! (projected read models), for CRM front ends, auditors and analysts.
//!
//! * [`build`] takes a bound listener, a configuration and a shutdown future, and returns the
//!   bound address and the serve future (the binary and the tests each pass their own).
//! * Every route is declared once in [`routes::ROUTES`], which builds both the router and the
//!   OpenAPI document, so the two cannot disagree.
//! * Errors: one [`ApiError`] mapped to HTTP in one place; the envelope middleware gives every
//!   other 4xx/5xx (unknown route, wrong method, extractor rejections, panics) the same body.
//! * Auth: bearer tokens with scopes ([`auth`]); with none configured the server refuses to
//!   listen anywhere but loopback.
//! * Read-your-writes: an append answers with a consistency token; a read that sends it back
//!   in `X-Consistency-Token` waits (bounded) until the projector's checkpoints cover it.

pub mod auth;
mod changes;
mod consistency;
pub mod error;
mod metrics;
mod middleware;
pub mod openapi;
pub mod reader;
pub mod routes;
mod versions;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use clientlog_domain::Policies;
use clientlog_eventlog::AnyLog;
use clientlog_readstore::{ReadStore, StoreConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::{Auth, Scope, TokenFile};
pub use consistency::ConsistencyToken;
pub use error::ApiError;

/// The bounds a request is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most events in one `POST /v1/events`.
    pub max_batch: usize,
    /// Largest `limit` of a paginated list.
    pub max_page: u32,
    /// Longest a request may run before it is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Longest a read waits for its consistency token.
    pub consistency_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_batch: 10_000,
            max_page: 500,
            request_timeout: Duration::from_secs(30),
            consistency_wait: Duration::from_secs(5),
        }
    }
}

/// Everything the API needs.
pub struct ApiConfig {
    /// Where appends go.
    pub log: AnyLog,
    /// Where the read models are.
    pub store: StoreConfig,
    /// The policies in force (what-if simulation starts from the grading policy).
    pub policies: Policies,
    pub auth: Auth,
    pub limits: Limits,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// `/readyz` fails when a partition lags more than this many events.
    pub ready_max_lag: i64,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "refusing to listen on {0} without API tokens: create one with `clientlog token create \
         --name NAME --scopes read,append` or listen on 127.0.0.1"
    )]
    OpenOnNetwork(SocketAddr),
    #[error("while reading the listener's address")]
    Address(#[source] std::io::Error),
    #[error("while opening the read store")]
    Store(#[source] clientlog_readstore::StoreError),
    #[error("while connecting the API's read pool")]
    Reader(#[source] reader::ReadError),
    #[error("invalid CORS origin {0:?}")]
    Cors(String),
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub log: AnyLog,
    pub reader: reader::Reader,
    /// The read store's own pool, for the shared read-side functions of the projector crate
    /// (as-of replay, what-if simulation).
    pub store: ReadStore,
    pub policies: Policies,
    pub auth: Auth,
    pub limits: Limits,
    pub metrics: metrics::Metrics,
    pub ready_max_lag: i64,
    pub version: consistency::VersionCache,
    /// Fires when shutdown begins, so long polls answer and event streams end (graceful
    /// shutdown waits for every open response).
    pub shutdown: CancellationToken,
}

pub(crate) type State = Arc<AppState>;

/// Builds the API on `listener`: migrates the read store if needed, opens the read pool and
/// returns the bound address and the future that serves until `shutdown` completes (in-flight
/// requests are finished first).
pub async fn build(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = std::io::Result<()>>), BuildError> {
    let address = listener.local_addr().map_err(BuildError::Address)?;
    if config.auth.is_open() && !address.ip().is_loopback() {
        return Err(BuildError::OpenOnNetwork(address));
    }
    // Migrations are idempotent; the projector may not have run yet.
    let store = ReadStore::open(&config.store)
        .await
        .map_err(BuildError::Store)?;
    let reader = reader::Reader::connect(&config.store, 8)
        .await
        .map_err(BuildError::Reader)?;
    let cors = cors_layer(&config.cors_origins)?;
    let state = Arc::new(AppState {
        log: config.log,
        reader: reader.clone(),
        store: store.clone(),
        policies: config.policies,
        auth: config.auth,
        metrics: metrics::Metrics::default(),
        ready_max_lag: config.ready_max_lag,
        version: consistency::VersionCache::default(),
        limits: config.limits,
        shutdown: CancellationToken::new(),
    });
    let stopping = state.shutdown.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    let mut router = routes::router()
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::envelope,
        ))
        .with_state(state);
    let serve = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .into_future();
    Ok((address, async move {
        let result = serve.await;
        reader.close().await;
        store.close().await;
        result
    }))
}

fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, BuildError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| BuildError::Cors(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                HeaderName::from_static(consistency::TOKEN_HEADER),
                HeaderName::from_static(consistency::STRICT_HEADER),
            ])
            .expose_headers([
                HeaderName::from_static(middleware::REQUEST_ID_HEADER),
                HeaderName::from_static(consistency::POSITION_HEADER),
                HeaderName::from_static(consistency::STALE_HEADER),
            ]),
    ))
}
