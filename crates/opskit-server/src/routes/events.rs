//! `/api/v1/events`: receives JSON events (webhooks), signed per Standard Webhooks when the
//! server has a secret, and lists what was received.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use opskit_notify::signing::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, ReceivedHeaders, Rejection, Verifier,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Auth, Principal};
use crate::problem::{AppError, FieldError, PROBLEM_JSON};
use crate::routes::parse_json;
use crate::state::AppState;
use crate::store::events::{EventQuery, EventStore, InsertEvent, StoredEvent};
use crate::store::now;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Path of the collection.
pub const EVENTS: &str = "/api/v1/events";
/// Header that may name the event's source (the `source` query parameter wins).
pub const SOURCE_HEADER: &str = "x-opskit-source";
/// Source recorded when the request names none.
pub const DEFAULT_SOURCE: &str = "webhook";
/// Problem type of every rejected delivery; `reason` says which check failed.
pub const REJECTED_TYPE: &str = "urn:opskit:problem:event-rejected";

const MAX_PER_PAGE: u32 = 200;
const DEFAULT_PER_PAGE: u32 = 20;
const MAX_WEBHOOK_ID: usize = 255;

/// A received event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Assigned by this server.
    pub id: Uuid,
    /// The sender's `webhook-id` (unique: a second delivery with it is rejected as a replay).
    pub webhook_id: Option<String>,
    /// Who sent it: the `source` query parameter, else the `X-Opskit-Source` header, else
    /// `webhook`.
    pub source: String,
    /// When this server received it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The signed `webhook-timestamp` (Unix seconds), for signed deliveries.
    pub signed_at: Option<i64>,
    /// True when the Standard Webhooks signature was verified.
    pub verified: bool,
    /// The JSON body as sent.
    pub payload: Value,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<Event>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
}

/// Where the event comes from (documented here; parsed by hand).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PostParams {
    /// Names the sender (1-64 of `A-Z a-z 0-9 . _ : -`); overrides the `X-Opskit-Source` header.
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    source: Option<String>,
}

/// Filters of the list (documented here; parsed by hand so every bad one is reported).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Items per page, 1 to 200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
    /// Only events from this source.
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    source: Option<String>,
    /// Only events received at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events received before this RFC 3339 time.
    #[param(format = DateTime)]
    until: Option<String>,
    /// Only the event with this `webhook-id`.
    #[param(min_length = 1, max_length = 255)]
    webhook_id: Option<String>,
}

fn source_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

const SOURCE_MSG: &str = "must be 1-64 characters: letters, digits, '.', '_', ':' or '-'";

fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| AppError::bad_request(format!("malformed query string: {e}")))
}

fn bad_field(loc: [&str; 2], msg: &str) -> FieldError {
    FieldError::new(vec![loc[0].into(), loc[1].into()], msg, "value_error")
}

/// A rejected delivery: a problem document with a machine-readable `reason`.
fn rejected(status: StatusCode, reason: &str, detail: String) -> Response {
    let body = json!({
        "type": REJECTED_TYPE,
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "reason": reason,
    });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

fn reason_of(r: &Rejection) -> &'static str {
    match r {
        Rejection::MissingHeader(h) if *h == HEADER_SIGNATURE => "missing_signature",
        Rejection::MissingHeader(_) | Rejection::MalformedHeader { .. } => "malformed_headers",
        other => other.code(),
    }
}

/// The three signature headers, whatever their case; values that are not text count as absent.
fn received_headers(headers: &HeaderMap) -> ReceivedHeaders {
    ReceivedHeaders::from_pairs(
        headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
    )
}

struct Accepted {
    webhook_id: Option<String>,
    signed_at: Option<i64>,
    verified: bool,
}

/// Checks the signature (with secrets) or the caller's role (without); `Err` is the answer.
fn admit(
    state: &AppState,
    principal: Option<&Principal>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, Box<Response>> {
    let cfg = state.config();
    let rh = received_headers(headers);
    if cfg.events_secrets.is_empty() {
        let Some(p) = principal else {
            return Err(AppError::Unauthorized(
                "authentication required: this server has no --events-secret, so events must be \
                 posted with an operator or admin credential (Authorization: Bearer, X-API-Key or \
                 HTTP Basic)"
                    .into(),
            )
            .into_response()
            .into());
        };
        p.require_write().map_err(|e| Box::new(e.into_response()))?;
        return Ok(Accepted {
            webhook_id: rh.id.filter(|s| !s.is_empty()),
            signed_at: None,
            verified: false,
        });
    }
    if rh.signature.as_deref().is_none_or(str::is_empty) {
        return Err(Box::new(rejected(
            StatusCode::UNAUTHORIZED,
            "missing_signature",
            format!(
                "missing signature: this endpoint only accepts deliveries signed per Standard \
                 Webhooks (`{HEADER_ID}`, `{HEADER_TIMESTAMP}` and `{HEADER_SIGNATURE}` headers), \
                 e.g. from `opskit notify webhook URL --secret …`"
            ),
        )));
    }
    let verifier = Verifier::new(cfg.events_secrets.clone())
        .map_err(|e| Box::new(AppError::Internal(e.to_string()).into_response()))?
        .tolerance(Some(cfg.events_tolerance));
    match verifier.verify(&rh, body) {
        Ok(()) => {}
        Err(opskit_notify::Error::Rejected(r)) => {
            return Err(Box::new(rejected(
                StatusCode::UNAUTHORIZED,
                reason_of(&r),
                r.to_string(),
            )));
        }
        Err(e) => return Err(Box::new(AppError::Internal(e.to_string()).into_response())),
    }
    Ok(Accepted {
        signed_at: rh.timestamp.as_deref().and_then(|t| t.parse().ok()),
        webhook_id: rh.id,
        verified: true,
    })
}

fn event_source(raw: Option<&str>, headers: &HeaderMap) -> Result<String, AppError> {
    // Both places are validated whenever present (every bad field at once); the query wins.
    let from_query = query_pairs(raw)?
        .into_iter()
        .find(|(k, _)| k == "source")
        .map(|(_, v)| v);
    let from_header = headers
        .get(SOURCE_HEADER)
        .map(|v| v.to_str().ok().map(str::to_owned));
    let mut errors = Vec::new();
    if from_query.as_deref().is_some_and(|s| !source_ok(s)) {
        errors.push(bad_field(["query", "source"], SOURCE_MSG));
    }
    if let Some(h) = &from_header
        && !h.as_deref().is_some_and(source_ok)
    {
        errors.push(bad_field(["header", SOURCE_HEADER], SOURCE_MSG));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(from_query
        .or(from_header.flatten())
        .unwrap_or_else(|| DEFAULT_SOURCE.to_owned()))
}

fn to_api(e: StoredEvent) -> Result<Event, AppError> {
    let payload = serde_json::from_str(&e.payload)
        .map_err(|err| AppError::Internal(format!("stored event {} payload: {err}", e.id)))?;
    Ok(Event {
        id: e.id,
        webhook_id: e.webhook_id,
        source: e.source,
        received_at: e.received_at,
        signed_at: e.signed_at,
        verified: e.verified,
        payload,
    })
}

/// Receive an event (a webhook delivery).
///
/// With `--events-secret` on the server, the request must carry a valid Standard Webhooks
/// signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and needs no other
/// credential; a timestamp outside the tolerance or a `webhook-id` already received is rejected.
/// Without a secret, the caller must authenticate as an operator or admin. Every rejection is a
/// problem document whose `reason` is one of `missing_signature`, `malformed_headers`,
/// `timestamp_too_old`, `timestamp_too_new`, `bad_signature`, `wrong_secret`,
/// `signature_mismatch` (401) or `replayed` (409).
#[utoipa::path(post, path = "/api/v1/events", tag = "events", params(PostParams,
        ("webhook-id" = Option<String>, Header, nullable = false, description = "Standard Webhooks message id; unique per delivery"),
        ("webhook-timestamp" = Option<String>, Header, nullable = false, description = "Standard Webhooks timestamp, Unix seconds"),
        ("webhook-signature" = Option<String>, Header, nullable = false, description = "Standard Webhooks signatures: `v1,<base64>` entries, space-separated"),
        ("X-Opskit-Source" = Option<String>, Header, nullable = false, pattern = r"^[A-Za-z0-9._:-]{1,64}$", description = "Names the sender when the `source` query parameter is absent")),
    request_body(content = Value, description = "Any JSON document", content_type = "application/json"),
    security((), ("bearerAuth" = []), ("apiKeyAuth" = []), ("basicAuth" = [])),
    responses(
        (status = 201, description = "Stored", body = Event),
        (status = 401, description = "Unsigned, badly signed or stale delivery (`reason` says which), or missing credentials when the server has no events secret", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Replayed: an event with this `webhook-id` was already received (`reason`: `replayed`)", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn post_event(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let accepted = match admit(&state, principal.as_deref(), &headers, &body) {
        Ok(a) => a,
        Err(resp) => return Ok(*resp),
    };
    if let Some(id) = &accepted.webhook_id
        && (id.len() > MAX_WEBHOOK_ID || id.chars().any(char::is_control))
    {
        return Ok(rejected(
            StatusCode::BAD_REQUEST,
            "malformed_headers",
            format!(
                "malformed header `{HEADER_ID}`: at most {MAX_WEBHOOK_ID} printable characters"
            ),
        ));
    }
    let source = event_source(raw.as_deref(), &headers)?;
    parse_json(headers.get(header::CONTENT_TYPE), &body, false)?;
    let payload = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::bad_request("the body is not valid UTF-8 JSON"))?;
    let event = StoredEvent {
        id: Uuid::now_v7(),
        webhook_id: accepted.webhook_id,
        source,
        received_at: now(),
        signed_at: accepted.signed_at,
        verified: accepted.verified,
        payload,
    };
    match state.db().insert_event(&event).await? {
        InsertEvent::Stored => {}
        InsertEvent::Replayed => {
            return Ok(rejected(
                StatusCode::CONFLICT,
                "replayed",
                format!(
                    "replayed: webhook id {:?} was already received",
                    event.webhook_id.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    Ok((StatusCode::CREATED, Json(to_api(event)?)).into_response())
}

fn parse_time(v: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
}

fn parse_list(raw: Option<&str>) -> Result<EventQuery, AppError> {
    let mut q = EventQuery {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        ..EventQuery::default()
    };
    let mut errors = Vec::new();
    for (k, v) in query_pairs(raw)? {
        match k.as_str() {
            "page" => match v.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => q.page = n,
                _ => errors.push(bad_field(
                    ["query", "page"],
                    "must be an integer from 1 to 1000000",
                )),
            },
            "per_page" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => q.per_page = n,
                _ => errors.push(bad_field(
                    ["query", "per_page"],
                    "must be an integer from 1 to 200",
                )),
            },
            "source" if source_ok(&v) => q.source = Some(v),
            "source" => errors.push(bad_field(["query", "source"], SOURCE_MSG)),
            "since" | "until" => match parse_time(&v) {
                Some(t) if k == "since" => q.since = Some(t),
                Some(t) => q.until = Some(t),
                None => errors.push(bad_field(
                    ["query", k.as_str()],
                    "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
                )),
            },
            "webhook_id" if !v.is_empty() && v.len() <= MAX_WEBHOOK_ID => {
                q.webhook_id = Some(v);
            }
            "webhook_id" => errors.push(bad_field(
                ["query", "webhook_id"],
                "must be 1-255 characters",
            )),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(AppError::Validation(errors))
    }
}

fn page_link(q: &EventQuery, page: u64) -> String {
    let mut params: Vec<(&str, String)> = vec![
        ("page", page.to_string()),
        ("per_page", q.per_page.to_string()),
    ];
    if let Some(v) = &q.source {
        params.push(("source", v.clone()));
    }
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    if let Some(t) = q.since {
        params.push(("since", fmt(t)));
    }
    if let Some(t) = q.until {
        params.push(("until", fmt(t)));
    }
    if let Some(v) = &q.webhook_id {
        params.push(("webhook_id", v.clone()));
    }
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    format!("{EVENTS}?{query}")
}

/// List received events, newest first, filtered and paged (any role).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(ListParams),
    responses((status = 200, description = "A page of events; `Link` has first/prev/next/last", body = EventPage,
        headers(("Link" = String, description = "RFC 8288 links to other pages")))))]
pub async fn list_events(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = parse_list(raw.as_deref())?;
    let (rows, total) = state.db().list_events(&q).await?;
    let data = rows
        .into_iter()
        .map(to_api)
        .collect::<Result<Vec<_>, _>>()?;
    let total_pages = total.div_ceil(u64::from(q.per_page));
    let links = super::page_links(u64::from(q.page), total_pages, |p| page_link(&q, p));
    let body = EventPage {
        data,
        page: q.page,
        per_page: q.per_page,
        total,
        total_pages,
    };
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

/// The `/api/v1/events` routes (behind the auth middleware).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events, post_event))
}
