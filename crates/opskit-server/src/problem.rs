//! Every error the API returns: `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Error;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input, located the way FastAPI does it: `["body", "hostname"]`,
/// `["query", "per_page"]`, `["body", "tags", 2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Where the bad value is.
    #[schema(schema_with = loc_schema, example = json!(["body", "hostname"]))]
    pub loc: Vec<Value>,
    /// What is wrong with it.
    pub msg: String,
    /// A stable machine-readable kind (`missing`, `type_error`, `value_error`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

fn loc_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::String))
                .item(ObjectBuilder::new().schema_type(Type::Integer)),
        )
        .into()
}

impl FieldError {
    pub fn new(loc: Vec<Value>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened this time, and how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every invalid input (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// An error from a handler, rendered as a problem document.
#[derive(Debug)]
pub enum AppError {
    /// 422 with the list of bad fields.
    Validation(Vec<FieldError>),
    /// Any 4xx with a message.
    Status(StatusCode, String),
    /// 401 with a `WWW-Authenticate` challenge.
    Unauthorized(String),
    /// 429 with `Retry-After` seconds (the general rate limit).
    TooManyRequests(u64),
    /// 429 from the guessing throttle (see [`crate::throttle`]): `Retry-After` seconds, and a
    /// detail that is the same whatever the credentials were.
    Throttled(u64),
    /// 5xx: the detail goes to the log, not to the client.
    Internal(String),
}

impl AppError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        AppError::Status(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        AppError::Status(StatusCode::NOT_FOUND, msg.into())
    }
    pub fn forbidden(msg: impl Into<String>) -> Self {
        AppError::Status(StatusCode::FORBIDDEN, msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        AppError::Status(StatusCode::CONFLICT, msg.into())
    }
    pub fn unprocessable(msg: impl Into<String>) -> Self {
        AppError::Status(StatusCode::UNPROCESSABLE_ENTITY, msg.into())
    }
    pub fn precondition_failed() -> Self {
        AppError::Status(
            StatusCode::PRECONDITION_FAILED,
            "the resource has changed since you read it (If-Match does not match its ETag); GET it again and retry".into(),
        )
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        match e {
            Error::Conflict(msg) => AppError::conflict(msg),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// Marks a response refused by the guessing throttle: the general limiter's `RateLimit-*`
/// headers are not added to it (they describe another budget).
#[derive(Debug, Clone, Copy)]
pub struct ThrottledResponse;

/// Builds a problem response.
pub fn problem_response(
    status: StatusCode,
    detail: Option<String>,
    errors: Option<Vec<FieldError>>,
) -> Response {
    let kind = if errors.is_some() {
        "urn:opskit:problem:validation-error".to_owned()
    } else {
        "about:blank".to_owned()
    };
    let problem = Problem {
        kind,
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        errors,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Validation(errors) => problem_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!(
                    "{} invalid input{}; see `errors`",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                )),
                Some(errors),
            ),
            AppError::Status(status, msg) => problem_response(status, Some(msg), None),
            AppError::Unauthorized(msg) => {
                let mut resp = problem_response(StatusCode::UNAUTHORIZED, Some(msg), None);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"opskit\""),
                );
                resp
            }
            AppError::TooManyRequests(secs) => {
                let mut resp = problem_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(format!("rate limit exceeded; retry in {secs} s")),
                    None,
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            AppError::Throttled(secs) => {
                let mut resp = problem_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some("too many failed sign-in attempts from this address or for this user; nothing was checked; retry after the time in Retry-After".into()),
                    None,
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                resp.extensions_mut().insert(ThrottledResponse);
                resp
            }
            AppError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                problem_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some("internal error; the server log has the details".into()),
                    None,
                )
            }
        }
    }
}
