//! The API's one error type and its one mapping to HTTP.
//!
//! Every 4xx/5xx answer has the same body:
//! `{"error":{"code","message","details":[{"path","problem"}]},"request_id"}`. Client errors
//! name the field and the problem; a 5xx carries only a generic message and the request id,
//! under which the cause chain is logged. Responses that did not come from [`ApiError`] (axum's
//! own rejections, a panic) are rewritten into the same form by the envelope middleware
//! ([`crate::middleware`]).

use std::error::Error as StdError;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served, set by the envelope middleware.
    pub(crate) static REQUEST_ID: String;
}

/// The current request's id (empty outside a request).
pub(crate) fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// One problem with one part of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    /// Where: a JSONPath into the body (`$[2].data.amount`) or a parameter name (`query.limit`).
    pub path: String,
    pub problem: String,
}

impl Detail {
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter, header or body that is not acceptable.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        details: Vec<Detail>,
    },
    #[error("the body is not valid JSON")]
    MalformedJson { details: Vec<Detail> },
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("this token lacks the `{0}` scope")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Every event of a batch was rejected.
    #[error("{message}")]
    Rejected {
        message: String,
        details: Vec<Detail>,
    },
    #[error("not ready")]
    NotReady { details: Vec<Detail> },
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// A strict read-your-writes wait ran out.
    #[error("the read models did not reach the consistency token within {0} ms")]
    Stale(u64),
    /// A response produced outside this type (axum rejection, panic), re-wrapped.
    #[error("{message}")]
    Other { status: StatusCode, message: String },
    /// Anything the client cannot fix. Its text is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, details: Vec<Detail>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            details,
        }
    }

    /// A bad query parameter.
    pub fn param(name: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        ApiError::InvalidRequest {
            message: format!("invalid query parameter `{name}`: {problem}"),
            details: vec![Detail::new(format!("query.{name}"), problem)],
        }
    }

    pub fn internal(err: impl StdError + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(err))
    }

    /// The status, code, message and details: the one place errors meet HTTP.
    pub fn parts(&self) -> (StatusCode, &'static str, String, Vec<Detail>) {
        let msg = self.to_string();
        match self {
            ApiError::InvalidRequest { details, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                msg,
                details.clone(),
            ),
            ApiError::MalformedJson { details } => (
                StatusCode::BAD_REQUEST,
                "malformed_json",
                msg,
                details.clone(),
            ),
            ApiError::Unauthenticated(_) => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", msg, vec![])
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", msg, vec![]),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", msg, vec![]),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                msg,
                vec![],
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                msg,
                vec![],
            ),
            ApiError::Rejected { details, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected",
                msg,
                details.clone(),
            ),
            ApiError::NotReady { details } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                msg,
                details.clone(),
            ),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout", msg, vec![]),
            ApiError::Stale(_) => (StatusCode::GATEWAY_TIMEOUT, "stale", msg, vec![]),
            ApiError::Other { status, .. } => {
                let code = code_of(*status);
                if status.is_server_error() {
                    (*status, code, "internal error".to_string(), vec![])
                } else {
                    (*status, code, msg, vec![])
                }
            }
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; quote the request id to the operator".to_string(),
                vec![],
            ),
        }
    }
}

/// The code of a status that did not come from an [`ApiError`].
pub(crate) fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "rejected",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// The cause chain of an error, one `: `-joined line, for the log.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorObject<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [Detail],
}

/// Marks a response whose body is already the error body.
#[derive(Clone, Copy)]
pub(crate) struct Enveloped;

pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    details: &[Detail],
    request_id: &str,
) -> Response {
    let body = serde_json::to_vec(&Body {
        error: ErrorObject {
            code,
            message,
            details,
        },
        request_id,
    })
    .unwrap_or_else(|_| {
        b"{\"error\":{\"code\":\"internal\",\"message\":\"internal error\",\"details\":[]}}"
            .to_vec()
    });
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"clientlog\""),
        );
    }
    response.extensions_mut().insert(Enveloped);
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let id = request_id();
        let (status, code, message, details) = self.parts();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(request_id = %id, cause = %chain(cause.as_ref()), "internal error");
        }
        error_response(status, code, &message, &details, &id)
    }
}

impl From<clientlog_readstore::StoreError> for ApiError {
    fn from(err: clientlog_readstore::StoreError) -> Self {
        ApiError::internal(err)
    }
}

impl From<crate::reader::ReadError> for ApiError {
    fn from(err: crate::reader::ReadError) -> Self {
        ApiError::internal(err)
    }
}

impl From<clientlog_eventlog::LogError> for ApiError {
    fn from(err: clientlog_eventlog::LogError) -> Self {
        ApiError::internal(err)
    }
}
