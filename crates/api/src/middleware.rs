//! The envelope around every request: a request id (echoed in `X-Request-Id` and in every
//! error body), the request timeout, the latency metric, and the rewrite of any 4xx/5xx that
//! did not come from [`ApiError`] (unknown route, wrong method, axum's extractor rejections,
//! a caught panic) into the one error body. 5xx texts never reach the client.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{code_of, error_response, ApiError, Enveloped, REQUEST_ID};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Largest rejection text kept as a 4xx message.
const MAX_MESSAGE: usize = 1024;

pub async fn envelope(State(state): State<crate::State>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", |p| p.as_str())
        .to_string();
    let timeout = state.limits.request_timeout;

    let response = REQUEST_ID
        .scope(id.clone(), async {
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(request_id = %id, %method, %route, "request timed out");
                    axum::response::IntoResponse::into_response(ApiError::Timeout(
                        timeout.as_millis() as u64,
                    ))
                }
            }
        })
        .await;
    let mut response = rewrap(response, &id).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    state
        .metrics
        .observe(&method, &route, status, started.elapsed());
    tracing::debug!(request_id = %id, %method, %route, status, elapsed_us = started.elapsed().as_micros() as u64, "answered");
    response
}

/// Gives a 4xx/5xx that is not already an error body the standard form.
async fn rewrap(response: Response, id: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<Enveloped>().is_some()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let message = if status.is_server_error() {
        tracing::error!(request_id = %id, status = status.as_u16(), body = %text, "internal error");
        "internal error; quote the request id to the operator".to_string()
    } else if status.as_u16() == 404 {
        "no such route; see /openapi.json".to_string()
    } else if status.as_u16() == 405 {
        "this route does not accept this method; see /openapi.json".to_string()
    } else if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        let mut text = text.trim().to_string();
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    };
    let mut fresh = error_response(status, code_of(status), &message, &[], id);
    // Keep headers such as `Allow` on a 405.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}
