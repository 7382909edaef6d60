//! `POST /heartbeat/{token}`: a job's "I ran" for a heartbeat monitor.
//!
//! No credential: the token is the secret (a cron job holds only its own). The route sits
//! behind the same middleware as the API, so it has the same per-client rate limit (a
//! request without a credential is limited by its IP), and a wrong credential sent along is
//! still a 401. The ping is stored in the database, so whichever replica receives it, the
//! leader sees it.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::AppError;
use crate::state::AppState;

/// The answer to a ping that counted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAck {
    /// Always `true`.
    pub ok: bool,
}

/// Records a heartbeat ping for the monitor with this token (public: the token is the secret).
#[utoipa::path(post, path = "/heartbeat/{token}", tag = "monitors", security(()),
    params(("token" = String, Path, description = "The heartbeat monitor's token")),
    responses(
        (status = 200, description = "The ping is recorded", body = HeartbeatAck),
        (status = 404, description = "No heartbeat monitor has this token, or the monitor does not run in this server",
            content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client", content_type = "application/problem+json"),
        (status = 503, description = "The ping could not be stored", content_type = "application/problem+json")))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let Some(monitor) = state.monitor() else {
        return Err(AppError::not_found(
            "the monitor does not run in this server (start opskit serve with --monitor or --monitor-config)",
        ));
    };
    match monitor.heartbeat(&token).await {
        Ok(true) => Ok(Json(HeartbeatAck { ok: true }).into_response()),
        Ok(false) => Err(AppError::not_found("no heartbeat monitor has this token")),
        Err(e) => {
            tracing::error!(error = %e, "storing a heartbeat failed");
            Err(AppError::Status(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the ping could not be stored; retry".into(),
            ))
        }
    }
}

/// `POST /heartbeat/{token}` (merged with the routes behind the auth and rate-limit
/// middleware; it takes no credential).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat))
}
