//! `/health` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::state::AppState;
use crate::store::Store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Health of the service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unreachable`.
    pub database: String,
    pub version: String,
}

/// Liveness and database reachability (public).
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database is unreachable", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let db_ok = tokio::time::timeout(std::time::Duration::from_secs(2), state.db().ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: if db_ok { "ok" } else { "unreachable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics (any authenticated principal).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>, Auth(_p): Auth) -> Response {
    let mut text = state.metrics().render();
    if let Some(c) = state.server_cache() {
        c.render_metrics(&mut text);
    }
    // the monitor engine's series, when it runs in this server
    if let Some(m) = state.monitor() {
        text.push_str(&m.render_metrics().await);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `/metrics` (behind the auth middleware: any credential).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// `/health`, open to anyone.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}
