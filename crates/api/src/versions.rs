//! Projection versions over HTTP: list them, start a rebuild under new policies (it runs in
//! this process, beside the live version), follow its progress, promote a version. The same
//! library calls as `clientlog rebuild` and `clientlog versions`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clientlog_domain::policy::{self, Policies, Policy, Versioned};
use clientlog_projector::rebuild::{run_rebuild, version_json, RebuildOptions};
use clientlog_projector::{Clock, Projector};
use clientlog_readstore::PromoteError;
use serde_json::{json, Value};

use crate::auth::Scope;
use crate::error::{ApiError, Detail};
use crate::routes::{body_kind, malformed, merged_policy};
use crate::State as AppState;

/// The policies of the live version (the API's configured ones on a store without one).
pub(crate) async fn live_policies(s: &AppState) -> Result<Policies, ApiError> {
    match s.store.live_version().await? {
        Some(live) => clientlog_projector::policies_of(&s.store, &live, &s.policies)
            .await
            .map_err(ApiError::internal),
        None => Ok(s.policies.clone()),
    }
}

pub(crate) async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let versions: Vec<Value> = s.store.versions().await?.iter().map(version_json).collect();
    Ok(Json(json!({ "versions": versions })).into_response())
}

pub(crate) async fn rebuild_status(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let version = parse_version(&id)?;
    let found = s
        .store
        .version(version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no projection version {version}")))?;
    Ok(Json(version_json(&found)).into_response())
}

/// `POST /v1/rebuilds`: `{"grading": …, "lifecycle": …, "churn": …, "as_of": "…", "promote":
/// bool}`. Each policy is a whole TOML text (string) or changes merged over the live version's
/// (object); absent, the live version's. Promoting needs the `admin` scope as well.
pub(crate) async fn start(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Analyze)?;
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        body_kind(&headers, false)?;
        serde_json::from_slice(&body).map_err(|e| malformed(&e))?
    };
    let Value::Object(mut request) = request else {
        return Err(ApiError::invalid(
            "the body must be a JSON object",
            vec![Detail::new(
                "$",
                "expected an object with grading, lifecycle, churn, as_of, promote",
            )],
        ));
    };
    let promote = match request.remove("promote") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid promote",
                vec![Detail::new("$.promote", "must be true or false")],
            ))
        }
    };
    if promote {
        s.auth.check(&headers, Scope::Admin)?;
    }
    let clock = match request.remove("as_of") {
        None | Some(Value::Null) => Clock::System,
        Some(Value::String(t)) => Clock::Fixed(crate::routes::parse_time(&t).ok_or_else(|| {
            ApiError::invalid(
                "invalid as_of",
                vec![Detail::new(
                    "$.as_of",
                    "must be RFC 3339, YYYY-MM-DD or Unix seconds",
                )],
            )
        })?),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid as_of",
                vec![Detail::new("$.as_of", "must be an RFC 3339 time or a date")],
            ))
        }
    };
    let live = live_policies(&s).await?;
    let policies = Policies {
        grading: requested(&live.grading, request.remove("grading"), "grading")?,
        lifecycle: requested(&live.lifecycle, request.remove("lifecycle"), "lifecycle")?,
        churn: requested(&live.churn, request.remove("churn"), "churn")?,
    };
    if let Some(key) = request.keys().next() {
        return Err(ApiError::invalid(
            "unknown field",
            vec![Detail::new(
                format!("$.{key}"),
                "unknown field; expected grading, lifecycle, churn, as_of, promote",
            )],
        ));
    }

    let projector = Projector::candidate(s.store.clone(), policies)
        .await
        .map_err(ApiError::internal)?;
    let version = projector.version();
    let options = RebuildOptions {
        promote,
        clock,
        ..RebuildOptions::default()
    };
    let task_state = s.clone();
    tokio::spawn(async move {
        let s = task_state;
        let outcome = run_rebuild(
            &projector,
            &s.log,
            &options,
            s.shutdown.child_token(),
            |_| {},
        )
        .await;
        match outcome {
            Ok(done) => tracing::info!(
                version,
                promoted = done.promoted,
                records = done.stats.records,
                "rebuild finished"
            ),
            Err(err) => tracing::warn!(version, error = %err, "rebuild failed"),
        }
    });
    let created = s
        .store
        .version(version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no projection version {version}")))?;
    let mut body = version_json(&created);
    body["links"] = json!({ "self": format!("/v1/rebuilds/{version}") });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromoteParams {
    #[serde(default)]
    allow_behind: bool,
}

pub(crate) async fn promote(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Result<Query<PromoteParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Admin)?;
    let version = parse_version(&id)?;
    let Query(params) = params.map_err(|e| {
        ApiError::invalid(
            "invalid query",
            vec![Detail::new("allow_behind", e.body_text())],
        )
    })?;
    match s.store.promote(version, params.allow_behind).await {
        Ok(promoted) => Ok(Json(version_json(&promoted)).into_response()),
        Err(PromoteError::NotFound(v)) => {
            Err(ApiError::NotFound(format!("no projection version {v}")))
        }
        Err(err @ (PromoteError::AlreadyLive(_) | PromoteError::Behind { .. })) => {
            Err(ApiError::Other {
                status: StatusCode::CONFLICT,
                message: err.to_string(),
            })
        }
        Err(err) => Err(ApiError::internal(err)),
    }
}

fn parse_version(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::invalid(
            "invalid version",
            vec![Detail::new("id", "must be a positive integer")],
        )
    })
}

/// A policy of a rebuild request: the live one, a whole TOML text, or changes merged over the
/// live one (kept as TOML, so the stored text is what was built with).
fn requested<P: Policy + Clone>(
    live: &Versioned<P>,
    value: Option<Value>,
    field: &str,
) -> Result<Versioned<P>, ApiError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(live.clone()),
        Some(Value::String(text)) => text,
        Some(changes) => {
            let merged = merged_policy(&live.policy, changes, field)?;
            toml::to_string(&merged).map_err(ApiError::internal)?
        }
    };
    policy::parse::<P>(&format!("{field}.toml"), &text).map_err(|e| {
        ApiError::invalid(
            format!("invalid {field} policy"),
            vec![Detail::new(format!("$.{field}.{}", e.key), e.problem)],
        )
    })
}
