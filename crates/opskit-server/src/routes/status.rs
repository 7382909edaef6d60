//! `GET /status` (the status page) and `GET /api/v1/monitors/{name}/badge.svg` (a badge of a
//! monitor's state or uptime).
//!
//! Who may see them is `--status-page`: `private` (the default) needs any credential the API
//! takes, and a browser without one is asked to log in (`WWW-Authenticate: Basic realm="opskit
//! status"`); `public` shows them to anyone. Both go through the API's rate limit. When this
//! server does not run the monitor, the page says so (404) and a badge is a 404 problem.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opskit_monitor::overview::{self, OverviewQuery};
use serde::Deserialize;

use crate::auth::Principal;
use crate::config::StatusPageAccess;
use crate::middleware::auth_and_rate_limit;
use crate::problem::AppError;
use crate::state::AppState;
use crate::status_page::{self, GroupView, MonitorView, PageView, badge};

/// The realm of the Basic-auth challenge on these routes.
pub const REALM: &str = "Basic realm=\"opskit status\", charset=\"UTF-8\"";

/// Resolved incidents on the page: those of the last 7 days, at most 10.
const RESOLVED_WINDOW_MS: i64 = 7 * 86_400_000;
const MAX_RESOLVED: u32 = 10;

/// The badge route as the OpenAPI document describes it (served by [`router`]).
pub fn documented() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(badge_svg))
}

/// The status page and the badges, with the API's authentication and rate limit in front.
pub fn router(state: &AppState) -> Router<AppState> {
    let router = Router::new()
        .route("/status", get(page))
        .route("/api/v1/monitors/{id}/badge.svg", get(badge_svg))
        .layer(from_fn_with_state(state.clone(), auth_and_rate_limit));
    if state.config().basic_auth {
        router.layer(map_response(challenge))
    } else {
        router
    }
}

/// A 401 from these routes (no credentials, or wrong ones) asks a browser to log in with a
/// username and password, unless Basic auth is turned off on this server.
async fn challenge(mut resp: Response) -> Response {
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    }
    resp
}

fn allowed(state: &AppState, req: &Request) -> bool {
    state.config().status_page == StatusPageAccess::Public
        || req.extensions().get::<Principal>().is_some()
}

fn html(status: StatusCode, body: String, cache: &'static str) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&status_page::CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// `GET /status`.
async fn page(State(state): State<AppState>, req: Request) -> Response {
    if !allowed(&state, &req) {
        let text = if state.config().basic_auth {
            "Log in with your opskit username and password (any role), or send an API key \
             (X-API-Key) or a bearer token."
        } else {
            "Send an API key (X-API-Key) or a bearer token: HTTP Basic is turned off on this \
             server."
        };
        let mut resp = html(
            StatusCode::UNAUTHORIZED,
            status_page::notice("Login required", text),
            "no-store",
        );
        if !state.config().basic_auth {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"opskit\""),
            );
        }
        return resp;
    }
    let Some(monitor) = state.monitor() else {
        return html(
            StatusCode::NOT_FOUND,
            status_page::notice(
                "No status page here",
                "This server does not run the monitor, so it has no status to show. Start \
                 opskit serve with --monitor-config FILE (or --monitor) to check your services \
                 and show them here.",
            ),
            "no-store",
        );
    };
    let cache = match state.config().status_page {
        StatusPageAccess::Public => "public, max-age=15",
        StatusPageAccess::Private => "no-store",
    };
    let config = monitor.config();
    let now_ms = opskit_monitor::now_ms();
    let data = match overview::overview(
        monitor.db(),
        OverviewQuery {
            now_ms,
            recent: status_page::CHART_POINTS,
            resolved_since_ms: now_ms - RESOLVED_WINDOW_MS,
            max_resolved: MAX_RESOLVED,
        },
    )
    .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "the status page could not read the monitor's database");
            return html(
                StatusCode::SERVICE_UNAVAILABLE,
                status_page::notice(
                    "Status unavailable",
                    "The monitor's database could not be read just now; the server log has the \
                     details. This page reloads by itself.",
                ),
                "no-store",
            );
        }
    };
    // groups in the order they first appear in the configuration, monitors in theirs; the
    // monitors without a group last
    let mut groups: Vec<GroupView<'_>> = Vec::new();
    let mut index: HashMap<Option<&str>, usize> = HashMap::new();
    for m in &config.monitors {
        let key = m.group.as_deref();
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(GroupView {
                name: key,
                monitors: Vec::new(),
            });
            groups.len() - 1
        });
        groups[i].monitors.push(MonitorView {
            name: &m.name,
            kind: m.check.kind(),
            data: data.monitors.get(&m.name),
        });
    }
    groups.sort_by_key(|g| g.name.is_none());
    // incidents of monitors no longer configured are not shown
    let known = |name: &str| config.monitors.iter().any(|m| m.name == name);
    let open: Vec<_> = data
        .open
        .iter()
        .filter(|i| known(&i.monitor))
        .cloned()
        .collect();
    let resolved: Vec<_> = data
        .resolved
        .iter()
        .filter(|i| known(&i.monitor))
        .cloned()
        .collect();
    let body = status_page::render(&PageView {
        now_ms,
        groups,
        open: &open,
        resolved: &resolved,
        leader: monitor.is_leader(),
    });
    html(StatusCode::OK, body, cache)
}

/// The query of a badge.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BadgeQuery {
    /// `state` (the default) or `uptime`.
    #[serde(rename = "type")]
    #[param(pattern = "^(state|uptime)$")]
    pub kind: Option<String>,
    /// For `type=uptime`: `24h` (the default), `7d` or `30d`.
    #[param(pattern = "^(24h|7d|30d)$")]
    pub window: Option<String>,
}

/// `GET /api/v1/monitors/{id}/badge.svg` (`id`: a stored monitor's UUID or any monitor's name).
#[utoipa::path(get, path = "/api/v1/monitors/{id}/badge.svg", tag = "monitors",
    description = "An SVG badge of a monitor's state or uptime, for a README or a wiki. Needs a credential \
unless the server runs with `--status-page public`, where anyone may fetch it (Cache-Control public).",
    params(("id" = String, Path, description = "Monitor UUID or name"), BadgeQuery),
    responses((status = 200, description = "The badge", content_type = "image/svg+xml", body = String,
        headers(("Cache-Control" = String, description = "public or private, max-age 60 (state) or 300 (uptime)")))))]
async fn badge_svg(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<BadgeQuery>,
    req: Request,
) -> Result<Response, AppError> {
    if !allowed(&state, &req) {
        return Err(AppError::Unauthorized(
            "the badges are private on this server (--status-page private): send credentials, \
             or start opskit serve with --status-page public to embed them anywhere"
                .into(),
        ));
    }
    let kind = q.kind.as_deref().unwrap_or("state");
    let window = q.window.as_deref().unwrap_or("24h");
    if kind != "state" && kind != "uptime" {
        return Err(AppError::bad_request(format!(
            "type must be state or uptime, got {kind:?}"
        )));
    }
    if !matches!(window, "24h" | "7d" | "30d") {
        return Err(AppError::bad_request(format!(
            "window must be 24h, 7d or 30d, got {window:?}"
        )));
    }
    let monitor = state.monitor().ok_or_else(|| {
        AppError::not_found(
            "this server does not run the monitor (start opskit serve with --monitor-config FILE or --monitor)",
        )
    })?;
    // `{id}` as in the rest of the monitors API: a stored monitor's UUID, or any monitor's name.
    let name = match opskit_monitor::definitions::get(monitor.db(), &name).await {
        Ok(Some(stored)) => stored.name,
        Ok(None) => name,
        Err(e) => return Err(AppError::Internal(e.to_string())),
    };
    if !monitor.config().monitors.iter().any(|m| m.name == name) {
        return Err(AppError::not_found(format!("no monitor named {name:?}")));
    }
    let (svg, max_age) = if kind == "state" {
        let status = overview::state_of(monitor.db(), &name)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        (badge::state(&name, status.as_deref()), 60)
    } else {
        let u = opskit_monitor::query::uptime(monitor.db(), &name, opskit_monitor::now_ms())
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let pct = match window {
            "7d" => u.uptime_7d,
            "30d" => u.uptime_30d,
            _ => u.uptime_24h,
        };
        (badge::uptime(&format!("uptime {window}"), pct), 300)
    };
    let scope = match state.config().status_page {
        StatusPageAccess::Public => "public",
        StatusPageAccess::Private => "private",
    };
    let mut resp = svg.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{scope}, max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    Ok(resp)
}
