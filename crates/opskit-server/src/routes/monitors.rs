//! `/api/v1/monitors` and `/api/v1/incidents`: the monitor engine running in this server
//! (`opskit serve --monitor` / `--monitor-config FILE`). Monitors of monitor.toml and of
//! inventory templates are listed read-only; monitors created here are stored in the database
//! ([`opskit_monitor::definitions`]), checked by monitor.toml's own rules, and picked up by the
//! engine at once (by other replicas on their next refresh).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opskit_monitor::config::{Check, Config, Monitor};
use opskit_monitor::definitions::{self, CurrentState, Invalid, Part, Stored, Written};
use opskit_monitor::query::{self, IncidentFilter};
use opskit_monitor::service::{Origin, Service};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Auth, Writer};
use crate::model::merge_patch;
use crate::model::monitors::{
    AlertView, IncidentPage, IncidentState, IncidentView, MonitorInput, MonitorOrigin, MonitorPage,
    MonitorPatch, MonitorState, MonitorView, ResultPage, ResultView, UptimeDay, UptimeView,
    duration_text, time_of_ms,
};
use crate::problem::{AppError, FieldError};
use crate::routes::JsonBody;
use crate::state::AppState;

/// Path of the collection.
pub const MONITORS: &str = "/api/v1/monitors";
/// Path of the incidents.
pub const INCIDENTS: &str = "/api/v1/incidents";
/// Largest page size of the monitors list.
pub const MAX_PER_PAGE: u32 = 200;
/// Default page size of the monitors list.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest page of results.
pub const MAX_RESULTS: u32 = 1000;
/// Default page of results.
pub const DEFAULT_RESULTS: u32 = 100;
/// Largest page of incidents.
pub const MAX_INCIDENTS: u32 = 500;
/// Default page of incidents.
pub const DEFAULT_INCIDENTS: u32 = 50;

/// What every monitors route answers when the engine does not run in this server.
pub const NOT_RUNNING: &str = "the monitor is not running in this server: start opskit serve with --monitor-config FILE or --monitor";

fn service(state: &AppState) -> Result<&Service, AppError> {
    state
        .monitor()
        .ok_or_else(|| AppError::not_found(NOT_RUNNING))
}

fn db_error(e: opskit_monitor::Error) -> AppError {
    AppError::Internal(format!("monitor database: {e}"))
}

// ---------------------------------------------------------------- views

/// Where a read-only monitor is defined, for its view and the 409 of a write.
fn defined_in(state: &AppState, m: &Monitor, origin: Origin) -> String {
    let file = state.config().monitor.config_path.as_ref().map_or_else(
        || "the --monitor-config file".to_string(),
        |p| p.display().to_string(),
    );
    match origin {
        Origin::Inventory => format!("an inventory template of {file} (line {})", m.line),
        _ => format!("{file} line {}", m.line),
    }
}

fn apply_state(v: &mut MonitorView, s: Option<&CurrentState>) {
    if let Some(s) = s {
        v.state = MonitorState::parse(&s.status).unwrap_or(MonitorState::Unknown);
        v.since = s.since_ms.map(time_of_ms);
        v.last_check = Some(time_of_ms(s.last_check_ms));
        v.last_reason = s.last_reason.clone();
        v.last_response_time_ms = s.last_response_time_ms;
    }
}

/// A monitor of the file or of an inventory template.
fn config_view(
    state: &AppState,
    m: &Monitor,
    origin: Origin,
    current: Option<&CurrentState>,
) -> MonitorView {
    let mut v = MonitorView {
        id: m.name.clone(),
        name: m.name.clone(),
        group: m.group.clone(),
        kind: m.check.kind().to_string(),
        target: m.check.target(),
        interval: duration_text(m.interval),
        origin: origin.into(),
        read_only: true,
        defined_in: Some(defined_in(state, m, origin)),
        running: true,
        problem: None,
        state: MonitorState::Unknown,
        since: None,
        last_check: None,
        last_reason: None,
        last_response_time_ms: None,
        definition: None,
        created_at: None,
        updated_at: None,
    };
    apply_state(&mut v, current);
    v
}

/// A monitor stored through the API, checked against the running configuration. A heartbeat
/// monitor's token is shown to `writer`s only (operator, admin): whoever knows it can ping the
/// monitor, keeping it up while the job it watches has stopped.
fn stored_view(
    svc: &Service,
    cfg: &Config,
    s: &Stored,
    current: Option<&CurrentState>,
    writer: bool,
) -> MonitorView {
    let checked = definitions::check(&Value::Object(s.definition.clone()), cfg);
    let mut shown = definitions::redacted(&s.definition);
    if !writer
        && let Some(t) = shown.get_mut("token")
        && !t.is_null()
    {
        *t = Value::String(definitions::REDACTED.into());
    }
    let text = |k: &str| {
        shown
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, target, interval, group) = match &checked {
        Ok(m) => (
            m.check.kind().to_string(),
            m.check.target(),
            duration_text(m.interval),
            m.group.clone(),
        ),
        Err(_) => (
            text("kind"),
            opskit_monitor::config::shown_url(&text("target")),
            text("interval"),
            shown
                .get("group")
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
    };
    let mut v = MonitorView {
        id: s.id.to_string(),
        name: s.name.clone(),
        group,
        kind,
        target,
        interval,
        origin: MonitorOrigin::Api,
        read_only: false,
        defined_in: None,
        running: svc.origin_of(&s.name) == Some(Origin::Api) && checked.is_ok(),
        problem: checked.err().map(|e| e.to_string()),
        state: MonitorState::Unknown,
        since: None,
        last_check: None,
        last_reason: None,
        last_response_time_ms: None,
        definition: Some(Value::Object(shown)),
        created_at: Some(time_of_ms(s.created_ms)),
        updated_at: Some(time_of_ms(s.updated_ms)),
    };
    apply_state(&mut v, current);
    v
}

fn with_etag(mut resp: Response, s: &Stored) -> Response {
    if let Ok(v) = HeaderValue::from_str(&s.etag()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The state of one monitor.
async fn current_of(svc: &Service, name: &str) -> Result<Option<CurrentState>, AppError> {
    let mut all = definitions::states(svc.db()).await.map_err(db_error)?;
    Ok(all.remove(name))
}

// ---------------------------------------------------------------- look-ups

/// A monitor found by id or name.
enum Found {
    Stored(Stored),
    Config(Box<Monitor>, Origin),
}

async fn find(svc: &Service, id: &str) -> Result<Found, AppError> {
    if let Some(s) = definitions::get(svc.db(), id).await.map_err(db_error)? {
        return Ok(Found::Stored(s));
    }
    let cfg = svc.config();
    if let Some(m) = cfg.monitors.iter().find(|m| m.name == id) {
        let origin = svc.origin_of(&m.name).unwrap_or(Origin::File);
        if origin != Origin::Api {
            return Ok(Found::Config(Box::new(m.clone()), origin));
        }
    }
    Err(AppError::not_found(format!(
        "no monitor with id or name {id:?}"
    )))
}

async fn find_stored(state: &AppState, svc: &Service, id: &str) -> Result<Stored, AppError> {
    match find(svc, id).await? {
        Found::Stored(s) => Ok(s),
        Found::Config(m, origin) => Err(read_only(state, &m, origin)),
    }
}

fn read_only(state: &AppState, m: &Monitor, origin: Origin) -> AppError {
    let how = match origin {
        Origin::Inventory => "edit the template or the inventory's servers",
        _ => "edit the file",
    };
    AppError::conflict(format!(
        "monitor {:?} is read-only here: defined in {}; {how}",
        m.name,
        defined_in(state, m, origin)
    ))
}

// ---------------------------------------------------------------- checking a body

fn field_error(e: Invalid) -> AppError {
    let mut loc: Vec<Value> = vec!["body".into()];
    for p in e.field {
        loc.push(match p {
            Part::Key(k) => k.into(),
            Part::Index(i) => i.into(),
        });
    }
    let kind = if e.message.starts_with("missing field") || e.message == "is missing" {
        "missing"
    } else {
        "value_error"
    };
    AppError::Validation(vec![FieldError::new(loc, e.message, kind)])
}

fn token_of(m: &Monitor) -> Option<&str> {
    match &m.check {
        Check::Heartbeat { token, .. } => Some(token),
        _ => None,
    }
}

/// Checks a definition against the running configuration: the monitor, or a 422 naming the
/// field, or a 409 when another origin has the name.
async fn checked(
    state: &AppState,
    svc: &Service,
    definition: &Map<String, Value>,
    this: Option<Uuid>,
) -> Result<Monitor, AppError> {
    let cfg = svc.config();
    let m = definitions::check(&Value::Object(definition.clone()), &cfg).map_err(field_error)?;
    if let Some(other) = cfg.monitors.iter().find(|o| o.name == m.name)
        && let Some(origin) = svc.origin_of(&other.name)
        && origin != Origin::Api
    {
        return Err(AppError::conflict(format!(
            "the name {:?} is taken by a monitor defined in {}",
            m.name,
            defined_in(state, other, origin)
        )));
    }
    if let Some(token) = token_of(&m) {
        let stored = definitions::list(svc.db()).await.map_err(db_error)?;
        let in_file = cfg
            .monitors
            .iter()
            .any(|o| o.name != m.name && token_of(o) == Some(token));
        let in_api = stored.iter().any(|s| {
            Some(s.id) != this && s.definition.get("token").and_then(Value::as_str) == Some(token)
        });
        if in_file || in_api {
            return Err(field_error(Invalid {
                field: vec![Part::Key("token".into())],
                message: "another monitor uses this token".into(),
            }));
        }
    }
    Ok(m)
}

/// The body as a definition: an object, its `null` values left out.
fn definition_of(value: Value) -> Result<Map<String, Value>, AppError> {
    match value {
        Value::Object(m) => Ok(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        _ => Err(AppError::Validation(vec![FieldError::new(
            vec!["body".into()],
            "a monitor is a JSON object with the keys of a [[monitor]] table of monitor.toml",
            "model_type",
        )])),
    }
}

// ---------------------------------------------------------------- list

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
    /// Only monitors of this group.
    #[param(min_length = 1, max_length = 200)]
    group: Option<String>,
    /// Only monitors in this state.
    state: Option<MonitorState>,
}

struct ListQuery {
    page: u32,
    per_page: u32,
    group: Option<String>,
    state: Option<MonitorState>,
}

fn query_error(name: &str, msg: &str) -> FieldError {
    FieldError::new(vec!["query".into(), name.into()], msg, "value_error")
}

fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| AppError::bad_request(format!("malformed query string: {e}")))
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, AppError> {
    let mut q = ListQuery {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        group: None,
        state: None,
    };
    let mut errors = Vec::new();
    for (k, v) in pairs(raw)? {
        match k.as_str() {
            "page" => match v.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => q.page = n,
                _ => errors.push(query_error("page", "must be an integer from 1 to 1000000")),
            },
            "per_page" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => q.per_page = n,
                _ => errors.push(query_error("per_page", "must be an integer from 1 to 200")),
            },
            "group" if !v.is_empty() && v.chars().count() <= 200 => q.group = Some(v),
            "group" => errors.push(query_error("group", "must be 1-200 characters")),
            "state" => match MonitorState::parse(&v) {
                Some(s) => q.state = Some(s),
                None => errors.push(query_error("state", "must be up, down or unknown")),
            },
            _ => {} // unknown parameters are ignored, as in the servers list
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
    if let Some(g) = &q.group {
        params.push(("group", g.clone()));
    }
    if let Some(s) = q.state {
        let s = match s {
            MonitorState::Up => "up",
            MonitorState::Down => "down",
            MonitorState::Unknown => "unknown",
        };
        params.push(("state", s.to_string()));
    }
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    format!("{MONITORS}?{query}")
}

/// List every monitor (the file's, the inventory templates', the API's), by name, filtered and
/// paged.
#[utoipa::path(get, path = "/api/v1/monitors", tag = "monitors", params(ListParams),
    responses((status = 200, description = "A page of monitors; `Link` has first/prev/next/last", body = MonitorPage,
        headers(("Link" = String, description = "RFC 8288 links to other pages"))),
        (status = 404, description = "The monitor is not running in this server", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn list_monitors(
    State(state): State<AppState>,
    Auth(principal): Auth,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = parse_list_query(raw.as_deref())?;
    let svc = service(&state)?;
    let cfg = svc.config();
    let states = definitions::states(svc.db()).await.map_err(db_error)?;
    let stored = definitions::list(svc.db()).await.map_err(db_error)?;
    let mut all: Vec<MonitorView> = cfg
        .monitors
        .iter()
        .filter_map(|m| {
            let origin = svc.origin_of(&m.name).unwrap_or(Origin::File);
            (origin != Origin::Api).then(|| config_view(&state, m, origin, states.get(&m.name)))
        })
        .collect();
    all.extend(stored.iter().map(|s| {
        stored_view(
            svc,
            &cfg,
            s,
            states.get(&s.name),
            principal.role.can_write(),
        )
    }));
    all.retain(|v| {
        q.group.as_ref().is_none_or(|g| v.group.as_ref() == Some(g))
            && q.state.is_none_or(|s| v.state == s)
    });
    all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let total = all.len() as u64;
    let total_pages = total.div_ceil(u64::from(q.per_page));
    let start = (u64::from(q.page) - 1) * u64::from(q.per_page);
    let data: Vec<MonitorView> = all
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(q.per_page as usize)
        .collect();
    let links = super::page_links(u64::from(q.page), total_pages, |p| page_link(&q, p));
    let mut resp = Json(MonitorPage {
        data,
        page: q.page,
        per_page: q.per_page,
        total,
        total_pages,
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------- create, get, patch, delete

/// Create a monitor (the keys of a `[[monitor]]` table of monitor.toml). The engine runs it at
/// once.
#[utoipa::path(post, path = "/api/v1/monitors", tag = "monitors", request_body = MonitorInput,
    responses((status = 201, description = "Created", body = MonitorView,
        headers(("Location" = String, description = "URL of the new monitor"), ("ETag" = String, description = "Entity tag"))),
        (status = 404, description = "The monitor is not running in this server", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another monitor (of any origin) has this name", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_monitor(
    State(state): State<AppState>,
    Writer(principal): Writer,
    JsonBody(value): JsonBody,
) -> Result<Response, AppError> {
    let svc = service(&state)?;
    let definition = definition_of(value)?;
    let m = checked(&state, svc, &definition, None).await?;
    let mut definition = definition;
    // stored as the parser read it
    definition.insert("name".into(), Value::String(m.name.clone()));
    let t = opskit_monitor::now_ms();
    let stored = Stored {
        id: Uuid::now_v7(),
        name: m.name.clone(),
        definition,
        version: 1,
        created_ms: t,
        updated_ms: t,
    };
    match definitions::create(svc.db(), &stored)
        .await
        .map_err(db_error)?
    {
        Written::Done => {}
        _ => {
            return Err(AppError::conflict(format!(
                "a monitor named {:?} already exists",
                stored.name
            )));
        }
    }
    svc.refresh_now();
    tracing::info!(id = %stored.id, name = %stored.name, by = %principal.name, "monitor created");
    let view = stored_view(svc, &svc.config(), &stored, None, true);
    let mut resp = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{MONITORS}/{}", stored.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(with_etag(resp, &stored))
}

/// Get one monitor by id (UUID) or name, with its current state.
#[utoipa::path(get, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "Monitor UUID or name")),
    responses((status = 200, description = "The monitor", body = MonitorView,
        headers(("ETag" = String, description = "Entity tag for If-Match (monitors created through the API)")))))]
pub async fn get_monitor(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let svc = service(&state)?;
    match find(svc, &id).await? {
        Found::Stored(s) => {
            let current = current_of(svc, &s.name).await?;
            let view = stored_view(
                svc,
                &svc.config(),
                &s,
                current.as_ref(),
                principal.role.can_write(),
            );
            Ok(with_etag(Json(view).into_response(), &s))
        }
        Found::Config(m, origin) => {
            let current = current_of(svc, &m.name).await?;
            Ok(Json(config_view(&state, &m, origin, current.as_ref())).into_response())
        }
    }
}

/// Change a monitor created through the API with a JSON Merge Patch (RFC 7396) of its
/// definition; secrets not sent (or sent back redacted) are kept. Honours `If-Match`.
/// Monitors of monitor.toml and of inventory templates answer 409.
#[utoipa::path(patch, path = "/api/v1/monitors/{id}", tag = "monitors",
    request_body(content = MonitorPatch, content_type = "application/merge-patch+json",
        description = "JSON Merge Patch (RFC 7396) of the monitor's definition"),
    params(("id" = String, Path, description = "Monitor UUID or name"),
        ("If-Match" = Option<String>, Header, nullable = false, min_length = 1, description = "`*` or the ETag from a GET: only if it still matches (412 otherwise)")),
    responses((status = 200, description = "Patched", body = MonitorView,
        headers(("ETag" = String, description = "New entity tag"))),
        (status = 409, description = "The monitor is read-only here (monitor.toml or an inventory template)", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn patch_monitor(
    State(state): State<AppState>,
    Writer(principal): Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody,
) -> Result<Response, AppError> {
    let svc = service(&state)?;
    if !patch.is_object() {
        return Err(AppError::Validation(vec![FieldError::new(
            vec!["body".into()],
            "a merge patch must be a JSON object",
            "model_type",
        )]));
    }
    for _attempt in 0..5 {
        let current = find_stored(&state, svc, &id).await?;
        let mut doc = Value::Object(current.definition.clone());
        merge_patch(&mut doc, &patch);
        let mut next = definition_of(doc)?;
        definitions::keep_secrets(&mut next, &current.definition);
        if next.get("name").and_then(Value::as_str).map(str::trim) != Some(current.name.as_str()) {
            return Err(field_error(Invalid {
                field: vec![Part::Key("name".into())],
                message: format!(
                    "a monitor cannot be renamed (its results and incidents are kept under {:?}); create a new one and delete this one",
                    current.name
                ),
            }));
        }
        // a bad body is a 422 whatever the precondition says
        checked(&state, svc, &next, Some(current.id)).await?;
        if super::if_match(&headers, &current.etag())? == Some(false) {
            return Err(AppError::precondition_failed());
        }
        let updated = Stored {
            definition: next,
            version: current.version + 1,
            updated_ms: opskit_monitor::now_ms().max(current.updated_ms),
            ..current.clone()
        };
        match definitions::update(svc.db(), &updated, current.version)
            .await
            .map_err(db_error)?
        {
            Written::Done => {
                svc.refresh_now();
                tracing::info!(id = %updated.id, name = %updated.name, by = %principal.name, "monitor changed");
                let now = current_of(svc, &updated.name).await?;
                let view = stored_view(svc, &svc.config(), &updated, now.as_ref(), true);
                return Ok(with_etag(Json(view).into_response(), &updated));
            }
            Written::NotFound => {
                return Err(AppError::not_found(format!(
                    "no monitor with id or name {id:?}"
                )));
            }
            Written::NameTaken => {
                return Err(AppError::conflict(format!(
                    "a monitor named {:?} already exists",
                    updated.name
                )));
            }
            Written::VersionMismatch if headers.contains_key(header::IF_MATCH) => {
                return Err(AppError::precondition_failed());
            }
            Written::VersionMismatch => continue,
        }
    }
    Err(AppError::conflict(
        "the monitor is being changed by other requests; retry",
    ))
}

/// Delete a monitor created through the API. Honours `If-Match`. Monitors of monitor.toml and
/// of inventory templates answer 409. Its results and incidents are kept.
#[utoipa::path(delete, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "Monitor UUID or name"),
        ("If-Match" = Option<String>, Header, nullable = false, min_length = 1, description = "`*` or the ETag from a GET: only if it still matches (412 otherwise)")),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "The monitor is read-only here (monitor.toml or an inventory template)", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete_monitor(
    State(state): State<AppState>,
    Writer(principal): Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let svc = service(&state)?;
    let current = find_stored(&state, svc, &id).await?;
    let expected = match super::if_match(&headers, &current.etag())? {
        Some(false) => return Err(AppError::precondition_failed()),
        Some(true) => Some(current.version),
        None => None,
    };
    match definitions::delete(svc.db(), current.id, expected)
        .await
        .map_err(db_error)?
    {
        Written::Done => {
            // Its open incident closes now (not at the leader's next refresh): nothing will
            // check the monitor again to resolve it.
            let shadowed = svc
                .origin_of(&current.name)
                .is_some_and(|o| o != opskit_monitor::service::Origin::Api);
            if !shadowed
                && let Err(e) = svc
                    .db()
                    .close_incident_of_removed(&current.name, opskit_monitor::now_ms())
                    .await
            {
                tracing::warn!(name = %current.name, error = %e, "closing the deleted monitor's incident failed; the leader closes it at its next refresh");
            }
            svc.refresh_now();
            tracing::info!(id = %current.id, name = %current.name, by = %principal.name, "monitor deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Written::VersionMismatch => Err(AppError::precondition_failed()),
        _ => Err(AppError::not_found(format!(
            "no monitor with id or name {id:?}"
        ))),
    }
}

// ---------------------------------------------------------------- results, uptime, incidents

/// Keyset paging parameters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ResultParams {
    /// Results per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    per_page: Option<u32>,
    /// Only results older than this (`next_before` of the previous page, ms since the epoch).
    #[param(minimum = 0)]
    before: Option<i64>,
}

fn parse_before(v: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match v.parse::<i64>() {
        Ok(n) if n >= 0 => Some(n),
        _ => {
            errors.push(query_error(
                "before",
                "must be a time in ms since the epoch (next_before of the previous page)",
            ));
            None
        }
    }
}

fn parse_per_page(v: &str, max: u32, errors: &mut Vec<FieldError>) -> Option<u32> {
    match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            errors.push(query_error(
                "per_page",
                &format!("must be an integer from 1 to {max}"),
            ));
            None
        }
    }
}

/// The name of the monitor `id` names (stored or in the running configuration).
async fn name_of(svc: &Service, id: &str) -> Result<String, AppError> {
    Ok(match find(svc, id).await? {
        Found::Stored(s) => s.name,
        Found::Config(m, _) => m.name,
    })
}

fn next_link(path: &str, mut params: Vec<(&str, String)>, before: Option<i64>) -> Option<String> {
    let before = before?;
    params.push(("before", before.to_string()));
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    Some(format!("<{path}?{query}>; rel=\"next\""))
}

fn with_link(mut resp: Response, link: Option<String>) -> Response {
    if let Some(l) = link
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

/// A monitor's raw results, newest first, a page at a time (keyset: a page stays right while
/// new results arrive).
#[utoipa::path(get, path = "/api/v1/monitors/{id}/results", tag = "monitors",
    params(("id" = String, Path, description = "Monitor UUID or name"), ResultParams),
    responses((status = 200, description = "A page of results; `Link` has the next one", body = ResultPage,
        headers(("Link" = String, description = "RFC 8288 link to the next (older) page")))))]
pub async fn monitor_results(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let mut errors = Vec::new();
    let (mut per_page, mut before) = (DEFAULT_RESULTS, None);
    for (k, v) in pairs(raw.as_deref())? {
        match k.as_str() {
            "per_page" => per_page = parse_per_page(&v, MAX_RESULTS, &mut errors).unwrap_or(0),
            "before" => before = parse_before(&v, &mut errors),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let svc = service(&state)?;
    let name = name_of(svc, &id).await?;
    let page = query::results(svc.db(), &name, before, per_page)
        .await
        .map_err(db_error)?;
    let data = page
        .items
        .into_iter()
        .map(|r| ResultView {
            at: time_of_ms(r.at_ms),
            status: MonitorState::parse(&r.status).unwrap_or(MonitorState::Unknown),
            response_time_ms: r.response_time_ms,
            reason: r.reason,
        })
        .collect();
    let path = format!(
        "{MONITORS}/{}/results",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    let link = next_link(
        &path,
        vec![("per_page", per_page.to_string())],
        page.next_before_ms,
    );
    let body = ResultPage {
        data,
        next_before: page.next_before_ms,
    };
    Ok(with_link(Json(body).into_response(), link))
}

/// A monitor's uptime over 24 hours, 7 and 30 days, and day by day.
#[utoipa::path(get, path = "/api/v1/monitors/{id}/uptime", tag = "monitors",
    params(("id" = String, Path, description = "Monitor UUID or name")),
    responses((status = 200, description = "The uptime", body = UptimeView)))]
pub async fn monitor_uptime(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let svc = service(&state)?;
    let name = name_of(svc, &id).await?;
    let u = query::uptime(svc.db(), &name, opskit_monitor::now_ms())
        .await
        .map_err(db_error)?;
    let day_format = time::macros::format_description!("[year]-[month]-[day]");
    let days = u
        .days
        .into_iter()
        .map(|d| UptimeDay {
            day: time_of_ms(d.day_ms).format(&day_format).unwrap_or_default(),
            up: d.up,
            down: d.down,
            unknown: d.unknown,
            uptime: d.uptime,
            mean_response_time_ms: d.mean_response_time_ms,
        })
        .collect();
    Ok(Json(UptimeView {
        monitor: name,
        uptime_24h: u.uptime_24h,
        uptime_7d: u.uptime_7d,
        uptime_30d: u.uptime_30d,
        days,
    })
    .into_response())
}

/// Which incidents.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IncidentParams {
    /// `open` or `resolved` (default both).
    state: Option<IncidentState>,
    /// Only the incidents of this monitor (its UUID or name).
    #[param(min_length = 1)]
    monitor: Option<String>,
    /// Incidents per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    per_page: Option<u32>,
    /// Only incidents started before this (`next_before` of the previous page, ms since the
    /// epoch).
    #[param(minimum = 0)]
    before: Option<i64>,
}

/// Incidents, open and past, newest first, with the condition that failed and the alerts
/// sent.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "monitors", params(IncidentParams),
    responses((status = 200, description = "A page of incidents; `Link` has the next one", body = IncidentPage,
        headers(("Link" = String, description = "RFC 8288 link to the next (older) page"))),
        (status = 404, description = "The monitor is not running in this server, or no such monitor", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn list_incidents(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let mut errors = Vec::new();
    let (mut per_page, mut before, mut filter, mut monitor) =
        (DEFAULT_INCIDENTS, None, IncidentFilter::All, None);
    let mut params: Vec<(&str, String)> = Vec::new();
    for (k, v) in pairs(raw.as_deref())? {
        match k.as_str() {
            "per_page" => {
                per_page = parse_per_page(&v, MAX_INCIDENTS, &mut errors).unwrap_or(0);
            }
            "before" => before = parse_before(&v, &mut errors),
            "state" => match v.as_str() {
                "open" => filter = IncidentFilter::Open,
                "resolved" => filter = IncidentFilter::Past,
                _ => errors.push(query_error("state", "must be open or resolved")),
            },
            "monitor" if !v.is_empty() => monitor = Some(v),
            "monitor" => errors.push(query_error("monitor", "must not be empty")),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let svc = service(&state)?;
    let name = match &monitor {
        Some(m) => Some(name_of(svc, m).await?),
        None => None,
    };
    let page = query::incidents(svc.db(), name.as_deref(), filter, before, per_page)
        .await
        .map_err(db_error)?;
    let data = page
        .items
        .into_iter()
        .map(|i| IncidentView {
            state: if i.resolved_ms.is_some() {
                IncidentState::Resolved
            } else {
                IncidentState::Open
            },
            id: i.id,
            monitor: i.monitor,
            started_at: time_of_ms(i.started_ms),
            resolved_at: i.resolved_ms.map(time_of_ms),
            reason: i.reason,
            resolved_reason: i.resolved_reason,
            failed_condition: i.failed_condition,
            alerts: i
                .alerts
                .into_iter()
                .map(|a| AlertView {
                    id: a.id,
                    destination: a.destination,
                    event: a.event,
                    created_at: time_of_ms(a.created_ms),
                    delivered_at: a.delivered_ms.map(time_of_ms),
                    failed_at: a.failed_ms.map(time_of_ms),
                    attempts: a.attempts,
                    last_error: a.last_error,
                    external_key: a.external_key,
                })
                .collect(),
        })
        .collect();
    params.push(("per_page", per_page.to_string()));
    match filter {
        IncidentFilter::Open => params.push(("state", "open".into())),
        IncidentFilter::Past => params.push(("state", "resolved".into())),
        IncidentFilter::All => {}
    }
    if let Some(m) = monitor {
        params.push(("monitor", m));
    }
    let link = next_link(INCIDENTS, params, page.next_before_ms);
    let body = IncidentPage {
        data,
        next_before: page.next_before_ms,
    };
    Ok(with_link(Json(body).into_response(), link))
}

/// The monitors and incidents routes (behind the auth middleware).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_monitors, create_monitor))
        .routes(routes!(get_monitor, patch_monitor, delete_monitor))
        .routes(routes!(monitor_results))
        .routes(routes!(monitor_uptime))
        .routes(routes!(list_incidents))
}
