//! `/api/v1/servers`: the inventory.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Auth, Writer, sha256_hex};
use crate::cache::Rendered;
use crate::model::{
    IdempotencyRecord, ListQuery, Server, ServerInput, ServerPage, ServerPatch, SortField, Status,
    is_tag, is_token, merge_patch,
};
use crate::problem::{AppError, FieldError};
use crate::routes::JsonBody;
use crate::state::AppState;
use crate::store::{CreateOutcome, ServerRef, Store, WriteOutcome, now};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Path of the collection.
pub const SERVERS: &str = "/api/v1/servers";
/// Largest page size.
pub const MAX_PER_PAGE: u32 = 200;
/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 20;

/// Query parameters of the list (documented here; parsed by hand so every bad one is reported).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Items per page, 1 to 200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
    /// Only servers in this environment.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    env: Option<String>,
    /// Only servers with this status.
    status: Option<Status>,
    /// Only servers with this OS type.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    os_type: Option<String>,
    /// Only servers carrying this tag.
    #[param(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,62}$")]
    tag: Option<String>,
    /// Hostname contains this text (case-insensitive).
    #[param(min_length = 1, max_length = 253)]
    q: Option<String>,
    /// Sort field, `-` prefix for descending: `hostname`, `created_at`, `updated_at`, `env`,
    /// `status` (default `created_at`).
    #[param(pattern = r"^-?(hostname|created_at|updated_at|env|status)$")]
    sort: Option<String>,
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| AppError::bad_request(format!("malformed query string: {e}")))?;
    let mut q = ListQuery {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        env: None,
        status: None,
        os_type: None,
        tag: None,
        q: None,
        sort: SortField::CreatedAt,
        descending: false,
    };
    let mut errors = Vec::new();
    let mut bad = |name: &str, msg: &str| {
        errors.push(FieldError::new(
            vec!["query".into(), name.into()],
            msg,
            "value_error",
        ));
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "page" => match v.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => q.page = n,
                _ => bad("page", "must be an integer from 1 to 1000000"),
            },
            "per_page" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => q.per_page = n,
                _ => bad("per_page", "must be an integer from 1 to 200"),
            },
            "env" if is_token(v) => q.env = Some(v.clone()),
            "env" => bad("env", "must be 1-32 lower-case letters, digits, '_' or '-'"),
            "os_type" if is_token(v) => q.os_type = Some(v.clone()),
            "os_type" => bad(
                "os_type",
                "must be 1-32 lower-case letters, digits, '_' or '-'",
            ),
            "status" => match Status::parse(v) {
                Some(s) => q.status = Some(s),
                None => bad(
                    "status",
                    "must be one of active, provisioning, maintenance, offline, decommissioned",
                ),
            },
            "tag" if is_tag(v) => q.tag = Some(v.clone()),
            "tag" => bad("tag", "not a valid tag"),
            "q" if !v.is_empty() && v.chars().count() <= 253 => q.q = Some(v.clone()),
            "q" => bad("q", "must be 1-253 characters"),
            "sort" => {
                let (desc, field) = match v.strip_prefix('-') {
                    Some(f) => (true, f),
                    None => (false, v.as_str()),
                };
                match SortField::parse(field) {
                    Some(f) => {
                        q.sort = f;
                        q.descending = desc;
                    }
                    None => bad(
                        "sort",
                        "must be hostname, created_at, updated_at, env or status, optionally prefixed with '-'",
                    ),
                }
            }
            _ => {} // unknown parameters are ignored, as FastAPI does
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(AppError::Validation(errors))
    }
}

fn page_link(q: &ListQuery, page: u64) -> String {
    let mut params: Vec<(&str, String)> = vec![
        ("page", page.to_string()),
        ("per_page", q.per_page.to_string()),
    ];
    if let Some(v) = &q.env {
        params.push(("env", v.clone()));
    }
    if let Some(v) = q.status {
        params.push(("status", v.as_str().to_owned()));
    }
    if let Some(v) = &q.os_type {
        params.push(("os_type", v.clone()));
    }
    if let Some(v) = &q.tag {
        params.push(("tag", v.clone()));
    }
    if let Some(v) = &q.q {
        params.push(("q", v.clone()));
    }
    let sort = format!("{}{}", if q.descending { "-" } else { "" }, q.sort.column());
    params.push(("sort", sort));
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    format!("{SERVERS}?{query}")
}

/// List servers, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/servers", tag = "servers", params(ListParams),
    responses((status = 200, description = "A page of servers; `Link` has first/prev/next/last", body = ServerPage,
        headers(("Link" = String, description = "RFC 8288 links to other pages")))))]
pub async fn list_servers(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = parse_list_query(raw.as_deref())?;
    let cache = state.server_cache();
    // the canonical self link names exactly this page (filters, sort, page, size)
    let key = cache.map(|_| page_link(&q, u64::from(q.page)));
    if let (Some(c), Some(k)) = (cache, &key)
        && let Some(hit) = c.page(k)
    {
        return Ok(rendered_response(&hit, header::LINK));
    }
    let ticket = cache.map(|c| c.ticket());
    let (data, total) = state.db().list_servers(&q).await?;
    let total_pages = total.div_ceil(u64::from(q.per_page));
    let links = super::page_links(u64::from(q.page), total_pages, |p| page_link(&q, p));
    let body = ServerPage {
        data,
        page: q.page,
        per_page: q.per_page,
        total,
        total_pages,
    };
    let rendered = Rendered {
        body: Bytes::from(
            serde_json::to_vec(&body)
                .map_err(|e| AppError::Internal(format!("serialising a page: {e}")))?,
        ),
        header: HeaderValue::from_str(&links.join(", ")).ok(),
    };
    let resp = rendered_response(&rendered, header::LINK);
    if let (Some(c), Some(k), Some(t)) = (cache, key, ticket) {
        c.fill_page(t, k, rendered);
    }
    Ok(resp)
}

/// A 200 JSON response from a rendering (its header under `name`).
fn rendered_response(r: &Rendered, name: header::HeaderName) -> Response {
    // room for the ~16 headers the middleware adds, so the map is not regrown on the way out
    let mut headers = HeaderMap::with_capacity(24);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = &r.header {
        headers.insert(name, v.clone());
    }
    let mut resp = Response::new(axum::body::Body::from(r.body.clone()));
    *resp.headers_mut() = headers;
    resp
}

fn with_etag(mut resp: Response, server: &Server) -> Response {
    if let Ok(v) = HeaderValue::from_str(&server.etag()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn created_response(server: &Server, body: String, replayed: bool) -> Response {
    let mut resp = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{SERVERS}/{}", server.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    with_etag(resp, server)
}

fn replay(rec: &IdempotencyRecord, request_hash: &str) -> Result<Response, AppError> {
    if rec.request_hash != request_hash {
        return Err(AppError::unprocessable(
            "this Idempotency-Key was already used with a different request body; use a new key for a new request",
        ));
    }
    let mut server: Server = serde_json::from_str(&rec.body)
        .map_err(|e| AppError::Internal(format!("stored idempotent response: {e}")))?;
    server.version = 1;
    Ok(created_response(&server, rec.body.clone(), true))
}

/// Create a server. With `Idempotency-Key`, a retry with the same body replays the first answer.
#[utoipa::path(post, path = "/api/v1/servers", tag = "servers", request_body = ServerInput,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = r"^[!-~]+$", description = "Makes a retried POST safe: same key and body replay the first response; same key with another body is a 422")),
    responses((status = 201, description = "Created", body = Server,
        headers(("Location" = String, description = "URL of the new server"), ("ETag" = String, description = "Entity tag")))))]
pub async fn create_server(
    State(state): State<AppState>,
    Writer(principal): Writer,
    headers: HeaderMap,
    JsonBody(value): JsonBody,
) -> Result<Response, AppError> {
    let input = ServerInput::from_json(&value).map_err(AppError::Validation)?;
    let idem_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) if v.is_empty() || v.len() > 255 => {
            return Err(AppError::bad_request(
                "Idempotency-Key must be 1-255 characters",
            ));
        }
        // any header bytes are accepted; the stored key is their hex form when not ASCII
        Some(v) => Some(match v.to_str() {
            Ok(k) => k.to_owned(),
            Err(_) => format!("hex:{}", hex::encode(v.as_bytes())),
        }),
    };
    let request_hash = sha256_hex(&serde_json::to_string(&input).unwrap_or_default());
    if let Some(key) = &idem_key
        && let Some(rec) = state.db().get_idempotency(&principal.id, key).await?
    {
        return replay(&rec, &request_hash);
    }
    let t = now();
    let server = Server {
        id: Uuid::now_v7(),
        hostname: input.hostname,
        ip: input.ip,
        env: input.env,
        status: input.status,
        os_type: input.os_type,
        tags: input.tags,
        labels: input.labels,
        created_at: t,
        updated_at: t,
        version: 1,
    };
    let body = serde_json::to_string(&server)
        .map_err(|e| AppError::Internal(format!("serialising a server: {e}")))?;
    let record = idem_key.as_ref().map(|key| IdempotencyRecord {
        principal: principal.id.to_string(),
        key: key.clone(),
        request_hash: request_hash.clone(),
        status: 201,
        body: body.clone(),
    });
    let created = state.db().create_server(&server, record.as_ref()).await;
    state.servers_changed();
    match created? {
        CreateOutcome::Created => {
            tracing::info!(id = %server.id, hostname = %server.hostname, by = %principal.name, "server created");
            Ok(created_response(&server, body, false))
        }
        CreateOutcome::IdempotencyKeyTaken => {
            let key = idem_key.unwrap_or_default();
            match state.db().get_idempotency(&principal.id, &key).await? {
                Some(rec) => replay(&rec, &request_hash),
                None => Err(AppError::conflict(
                    "a concurrent request with the same Idempotency-Key is in progress; retry",
                )),
            }
        }
    }
}

async fn load(state: &AppState, id: &str) -> Result<Server, AppError> {
    state
        .db()
        .get_server(&ServerRef::parse(id))
        .await?
        .ok_or_else(|| AppError::not_found(format!("no server with id or hostname {id:?}")))
}

/// Get one server by UUID or hostname.
#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "servers",
    params(("id" = String, Path, description = "Server UUID or hostname")),
    responses((status = 200, description = "The server", body = Server,
        headers(("ETag" = String, description = "Entity tag for If-Match")))))]
pub async fn get_server(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let Some(cache) = state.server_cache() else {
        let server = load(&state, &id).await?;
        let resp = Json(&server).into_response();
        return Ok(with_etag(resp, &server));
    };
    let r = ServerRef::parse(&id);
    if let Some(hit) = cache.server(&r) {
        return Ok(rendered_response(&hit, header::ETAG));
    }
    let ticket = cache.ticket();
    let server = state
        .db()
        .get_server(&r)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no server with id or hostname {id:?}")))?;
    let rendered = Rendered {
        body: Bytes::from(
            serde_json::to_vec(&server)
                .map_err(|e| AppError::Internal(format!("serialising a server: {e}")))?,
        ),
        header: HeaderValue::from_str(&server.etag()).ok(),
    };
    let resp = rendered_response(&rendered, header::ETAG);
    cache.fill_server(ticket, server.id, &server.hostname, rendered);
    Ok(resp)
}

async fn write_new_state(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    make: impl Fn(&Server) -> Result<ServerInput, AppError>,
) -> Result<Response, AppError> {
    for _attempt in 0..5 {
        let current = load(state, id).await?;
        // a bad body is a 422 whatever the precondition says
        let input = make(&current)?;
        if super::if_match(headers, &current.etag())? == Some(false) {
            return Err(AppError::precondition_failed());
        }
        let next = Server {
            id: current.id,
            hostname: input.hostname,
            ip: input.ip,
            env: input.env,
            status: input.status,
            os_type: input.os_type,
            tags: input.tags,
            labels: input.labels,
            created_at: current.created_at,
            updated_at: now().max(current.updated_at),
            version: current.version + 1,
        };
        let updated = state.db().update_server(&next, current.version).await;
        state.servers_changed();
        match updated? {
            WriteOutcome::Done => {
                let resp = Json(&next).into_response();
                return Ok(with_etag(resp, &next));
            }
            WriteOutcome::NotFound => {
                return Err(AppError::not_found(format!(
                    "no server with id or hostname {id:?}"
                )));
            }
            WriteOutcome::VersionMismatch if headers.contains_key(header::IF_MATCH) => {
                return Err(AppError::precondition_failed());
            }
            WriteOutcome::VersionMismatch => continue,
        }
    }
    Err(AppError::conflict(
        "the server is being changed by other requests; retry",
    ))
}

/// Replace a server. Honours `If-Match` (412 when the server changed).
#[utoipa::path(put, path = "/api/v1/servers/{id}", tag = "servers", request_body = ServerInput,
    params(("id" = String, Path, description = "Server UUID or hostname"),
        ("If-Match" = Option<String>, Header, nullable = false, min_length = 1, description = "`*` or the ETag from a GET: only if it still matches (412 otherwise)")),
    responses((status = 200, description = "Replaced", body = Server,
        headers(("ETag" = String, description = "New entity tag")))))]
pub async fn put_server(
    State(state): State<AppState>,
    _writer: Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(value): JsonBody,
) -> Result<Response, AppError> {
    let input = ServerInput::from_json(&value).map_err(AppError::Validation)?;
    write_new_state(&state, &headers, &id, |_| Ok(input.clone())).await
}

/// Change some fields of a server with a JSON Merge Patch (RFC 7396): fields present are set,
/// `null` removes (resets) a field. Honours `If-Match`.
#[utoipa::path(patch, path = "/api/v1/servers/{id}", tag = "servers",
    request_body(content = ServerPatch, content_type = "application/merge-patch+json",
        description = "JSON Merge Patch (RFC 7396) of a ServerInput"),
    params(("id" = String, Path, description = "Server UUID or hostname"),
        ("If-Match" = Option<String>, Header, nullable = false, min_length = 1, description = "`*` or the ETag from a GET: only if it still matches (412 otherwise)")),
    responses((status = 200, description = "Patched", body = Server,
        headers(("ETag" = String, description = "New entity tag")))))]
pub async fn patch_server(
    State(state): State<AppState>,
    _writer: Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody,
) -> Result<Response, AppError> {
    if !patch.is_object() {
        return Err(AppError::Validation(vec![FieldError::new(
            vec!["body".into()],
            "a merge patch must be a JSON object",
            "model_type",
        )]));
    }
    write_new_state(&state, &headers, &id, |current| {
        let mut doc: Value = serde_json::to_value(current.to_input())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        ServerInput::from_json(&doc).map_err(AppError::Validation)
    })
    .await
}

/// Delete a server. Honours `If-Match`.
#[utoipa::path(delete, path = "/api/v1/servers/{id}", tag = "servers",
    params(("id" = String, Path, description = "Server UUID or hostname"),
        ("If-Match" = Option<String>, Header, nullable = false, min_length = 1, description = "`*` or the ETag from a GET: only if it still matches (412 otherwise)")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_server(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    principal.require_write()?;
    let current = load(&state, &id).await?;
    let expected = match super::if_match(&headers, &current.etag())? {
        Some(false) => return Err(AppError::precondition_failed()),
        Some(true) => Some(current.version),
        None => None,
    };
    let deleted = state.db().delete_server(current.id, expected).await;
    state.servers_changed();
    match deleted? {
        WriteOutcome::Done => {
            tracing::info!(id = %current.id, by = %principal.name, "server deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        WriteOutcome::NotFound => Err(AppError::not_found(format!(
            "no server with id or hostname {id:?}"
        ))),
        WriteOutcome::VersionMismatch => Err(AppError::precondition_failed()),
    }
}

/// The `/api/v1/servers` routes (behind the auth middleware).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_servers, create_server))
        .routes(routes!(get_server, put_server, patch_server, delete_server))
}
