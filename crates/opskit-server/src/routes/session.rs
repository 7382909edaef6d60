//! `/auth/*`: log in, refresh (with rotation and reuse detection), log out, who am I.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Auth, PrincipalKind, login, random_token, sha256_hex};
use crate::metrics::AuthMethod;
use crate::middleware::ClientIp;
use crate::model::{RefreshToken, Role, User};
use crate::problem::{AppError, FieldError};
use crate::routes::JsonBody;
use crate::state::AppState;
use crate::store::{RefreshUse, Store, now};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Credentials for `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct LoginRequest {
    #[schema(min_length = 1, max_length = 64)]
    username: String,
    #[schema(min_length = 1, max_length = 1024, format = Password)]
    password: String,
}

/// A refresh token, for `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct RefreshRequest {
    #[schema(min_length = 1, max_length = 256)]
    refresh_token: String,
}

/// Tokens issued by login and refresh.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived JWT: send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single-use: exchange it at `/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// Who the caller is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub role: Role,
    /// `user` or `api_key`.
    pub kind: String,
}

fn string_fields(value: &Value, fields: &[(&str, usize)]) -> Result<Vec<String>, AppError> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let Some(obj) = value.as_object() else {
        return Err(AppError::Validation(vec![FieldError::new(
            vec!["body".into()],
            "Input should be a valid JSON object",
            "model_type",
        )]));
    };
    for (name, max) in fields {
        match obj.get(*name) {
            None => errors.push(FieldError::new(
                vec!["body".into(), (*name).into()],
                "Field required",
                "missing",
            )),
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= *max => {
                out.push(s.clone())
            }
            Some(Value::String(_)) => errors.push(FieldError::new(
                vec!["body".into(), (*name).into()],
                format!("must be 1-{max} characters"),
                "value_error",
            )),
            Some(_) => errors.push(FieldError::new(
                vec!["body".into(), (*name).into()],
                "Input should be a string",
                "type_error",
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AppError::Validation(errors))
    }
}

async fn issue_tokens(
    state: &AppState,
    user: &User,
    family: Uuid,
) -> Result<TokenResponse, AppError> {
    let cfg = state.config();
    let access = state.jwt().issue(user, family, cfg.access_token_ttl)?;
    let refresh = random_token(32);
    // validated at start; checked again so that no setting can make a login panic
    let expires_at = time::Duration::try_from(cfg.refresh_token_ttl)
        .ok()
        .and_then(|ttl| now().checked_add(ttl))
        .ok_or_else(|| AppError::Internal("refresh token lifetime out of range".into()))?;
    state
        .db()
        .insert_refresh(&RefreshToken {
            token_hash: sha256_hex(&refresh),
            family_id: family,
            user_id: user.id,
            expires_at,
        })
        .await?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: cfg.access_token_ttl.as_secs(),
        refresh_token: refresh,
        refresh_expires_in: cfg.refresh_token_ttl.as_secs(),
    })
}

/// Log in with a username and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, description = "Tokens", body = TokenResponse)))]
pub async fn login_handler(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    JsonBody(value): JsonBody,
) -> Result<Response, AppError> {
    let fields = string_fields(&value, &[("username", 64), ("password", 1024)])?;
    let [username, password] =
        <[String; 2]>::try_from(fields).map_err(|_| AppError::Internal("login fields".into()))?;
    // throttled, checked, logged and counted in one place for login, Basic and API keys
    let user = login(
        &state,
        AuthMethod::Login,
        ip.0,
        &username,
        SecretString::from(password),
    )
    .await?;
    let tokens = issue_tokens(&state, &user, Uuid::now_v7()).await?;
    tracing::info!(username = %user.username, "login");
    Ok(Json(tokens).into_response())
}

/// Exchange a refresh token for a new pair. Each refresh token works once; presenting a used one
/// again revokes every token of its family (someone has a stolen copy).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security(()), request_body = RefreshRequest,
    responses((status = 200, description = "New tokens", body = TokenResponse)))]
pub async fn refresh_handler(
    State(state): State<AppState>,
    JsonBody(value): JsonBody,
) -> Result<Response, AppError> {
    let token = string_fields(&value, &[("refresh_token", 256)])?.remove(0);
    match state.db().use_refresh(&sha256_hex(&token), now()).await? {
        RefreshUse::Valid(rt) => {
            let Some(user) = state.db().user_by_id(rt.user_id).await? else {
                return Err(AppError::Unauthorized("the user no longer exists".into()));
            };
            let tokens = issue_tokens(&state, &user, rt.family_id).await?;
            Ok(Json(tokens).into_response())
        }
        RefreshUse::Reused(family) => {
            state.tokens().forget_session(family);
            tracing::warn!(
                "refresh token reuse detected (a used token presented again); that login's tokens are revoked"
            );
            Err(AppError::Unauthorized(
                "refresh token already used: every token of this login has been revoked; log in again".into(),
            ))
        }
        RefreshUse::Revoked => {
            tracing::info!(
                "refresh with a revoked token (after logout, a password change or a revocation)"
            );
            Err(AppError::Unauthorized(
                "refresh token has been revoked (logged out, password changed or login revoked); log in again".into(),
            ))
        }
        RefreshUse::Invalid => Err(AppError::Unauthorized(
            "refresh token is unknown, expired or revoked; log in again".into(),
        )),
    }
}

/// Log out: revoke the refresh token and every token rotated from the same login.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(()), request_body = RefreshRequest,
    responses((status = 204, description = "Revoked")))]
pub async fn logout_handler(
    State(state): State<AppState>,
    JsonBody(value): JsonBody,
) -> Result<Response, AppError> {
    let token = string_fields(&value, &[("refresh_token", 256)])?.remove(0);
    if let Some(family) = state
        .db()
        .revoke_refresh_family(&sha256_hex(&token))
        .await?
    {
        // this login's access tokens stop here at once, on other replicas at their next re-check
        state.tokens().forget_session(family);
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AppError::Unauthorized("unknown refresh token".into()))
    }
}

/// The authenticated caller.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = Me)))]
pub async fn me_handler(Auth(p): Auth) -> Json<Me> {
    Json(Me {
        name: p.name.to_string(),
        role: p.role,
        kind: match p.kind {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
        }
        .into(),
    })
}

/// The `/auth/*` routes (behind the auth middleware, which lets the login through).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_handler))
        .routes(routes!(refresh_handler))
        .routes(routes!(logout_handler))
        .routes(routes!(me_handler))
}
