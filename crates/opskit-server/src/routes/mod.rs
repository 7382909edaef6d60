//! HTTP handlers.

pub mod events;
pub mod ops;
pub mod servers;
pub mod session;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::problem::AppError;

/// Reads a JSON request body: 415 unless the content type is JSON (or, for PATCH,
/// `application/merge-patch+json`), 400 when it does not parse.
pub fn json_body(headers: &HeaderMap, body: &[u8], merge_patch: bool) -> Result<Value, AppError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
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
