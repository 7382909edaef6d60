//! HTTP handlers.

pub mod events;
pub mod heartbeat;
pub mod monitors;
pub mod ops;
pub mod servers;
pub mod session;
pub mod status;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::AppError;

/// `If-Match` (RFC 9110 §13.1.1) against a resource whose entity tag is `etag`, for every route
/// that writes under one (servers, monitors): `*` alone, or a list of entity tags compared
/// strongly. `Ok(None)` when absent; `Ok(Some(false))` when present and not matching: a weak tag
/// `W/"…"`, a `*` inside a list and anything that is not our exact quoted tag never match (412,
/// nothing is written); 400 when empty.
pub(crate) fn if_match(
    headers: &axum::http::HeaderMap,
    etag: &str,
) -> Result<Option<bool>, AppError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        AppError::bad_request(
            "If-Match must be * or a list of entity tags such as \"0193…-2\" (take it from the ETag of a GET)",
        )
    };
    let value = value.to_str().map_err(|_| bad())?.trim();
    if value.is_empty() {
        return Err(bad());
    }
    if value == "*" {
        return Ok(Some(true));
    }
    // strong comparison: only our exact quoted tag, never a W/ one
    Ok(Some(value.split(',').map(str::trim).any(|tag| tag == etag)))
}

/// A JSON request body, read by every handler that takes one: 415 unless the content type is
/// JSON (or, for PATCH, `application/merge-patch+json`), 400 when it does not parse, and the
/// body limit's 413 as before; every rejection is the problem document.
#[derive(Debug)]
pub struct JsonBody<T = Value>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let merge_patch = req.method() == Method::PATCH;
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let value = parse_json(content_type.as_ref(), &body, merge_patch)
            .map_err(IntoResponse::into_response)?;
        let value = serde_json::from_value(value).map_err(|e| {
            AppError::unprocessable(format!("the body does not have the expected shape: {e}"))
                .into_response()
        })?;
        Ok(JsonBody(value))
    }
}

/// The checks of [`JsonBody`], for the one handler that must read the raw bytes first
/// (`POST /api/v1/events` verifies a signature over them before anything else).
pub fn parse_json(
    content_type: Option<&HeaderValue>,
    body: &[u8],
    merge_patch: bool,
) -> Result<Value, AppError> {
    let ct = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = mime == "application/json"
        || (mime.starts_with("application/")
            && mime.ends_with("+json")
            && (merge_patch || mime != "application/merge-patch+json"));
    if !ok {
        return Err(AppError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            if merge_patch {
                format!(
                    "expected Content-Type application/merge-patch+json or application/json, got {ct:?}"
                )
            } else {
                format!("expected Content-Type application/json, got {ct:?}")
            },
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        AppError::bad_request(format!(
            "the body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// RFC 8288 `Link` values (first, prev, next, last) of page `page` out of `total_pages`;
/// `link(n)` is the URL of page `n`.
pub(crate) fn page_links(page: u64, total_pages: u64, link: impl Fn(u64) -> String) -> Vec<String> {
    let last = total_pages.max(1);
    let mut links = vec![format!("<{}>; rel=\"first\"", link(1))];
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link((page - 1).min(last))));
    }
    if page < total_pages {
        links.push(format!("<{}>; rel=\"next\"", link(page + 1)));
    }
    links.push(format!("<{}>; rel=\"last\"", link(last)));
    links
}
