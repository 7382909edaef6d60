//! The router ([`app`]) and the listening server ([`Application`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use axum::serve::ListenerExt;
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{JwtKeys, TokenCache, random_token};
use crate::cache::ServerCache;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::middleware::{Limiter, auth_and_rate_limit, finish_response};
use crate::openapi::ApiDoc;
use crate::problem::AppError;
use crate::routes::{events, ops, servers, session};
use crate::store::{Db, Store};
use crate::{Error, users};

struct Inner {
    db: Db,
    config: ServerConfig,
    jwt: JwtKeys,
    limiter: Option<Limiter>,
    login_limiter: Option<Limiter>,
    metrics: Metrics,
    server_cache: Option<ServerCache>,
    tokens: TokenCache,
}

/// Shared state of the running API.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.0.db)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state; the JWT secret comes from the config or, failing that, from the
    /// database (generated on first use, so tokens survive restarts and are shared by replicas).
    pub async fn new(db: Db, config: ServerConfig) -> Result<AppState, Error> {
        let secret = match &config.jwt_secret {
            Some(s) => s.clone(),
            None => SecretString::from(db.init_setting("jwt_secret", &random_token(48)).await?),
        };
        Ok(AppState(Arc::new(Inner {
            jwt: JwtKeys::new(&secret),
            limiter: Limiter::per_minute(config.rate_limit_per_minute),
            login_limiter: Limiter::per_minute(config.login_rate_limit_per_minute),
            metrics: Metrics::default(),
            server_cache: config
                .server_cache
                .unwrap_or(matches!(db, Db::Sqlite(_)))
                .then(ServerCache::default),
            tokens: TokenCache::default(),
            db,
            config,
        })))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }
    pub fn jwt(&self) -> &JwtKeys {
        &self.0.jwt
    }
    pub fn limiter(&self) -> Option<&Limiter> {
        self.0.limiter.as_ref()
    }
    pub fn login_limiter(&self) -> Option<&Limiter> {
        self.0.login_limiter.as_ref()
    }
    /// Access tokens already verified.
    pub fn tokens(&self) -> &TokenCache {
        &self.0.tokens
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    /// The response cache, when on (see [`ServerCache`]).
    pub fn server_cache(&self) -> Option<&ServerCache> {
        self.0.server_cache.as_ref()
    }
    /// Call after every write to the servers table, whatever its outcome.
    pub fn servers_changed(&self) {
        if let Some(c) = self.server_cache() {
            c.invalidate();
        }
    }
}

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protected_routes())
        .merge(public_routes())
        .split_for_parts();
    crate::openapi::finish(doc)
}

fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(servers::list_servers, servers::create_server))
        .routes(routes!(
            servers::get_server,
            servers::put_server,
            servers::patch_server,
            servers::delete_server
        ))
        .routes(routes!(session::login_handler))
        .routes(routes!(session::refresh_handler))
        .routes(routes!(session::logout_handler))
        .routes(routes!(session::me_handler))
        .routes(routes!(ops::metrics))
        .routes(routes!(events::list_events, events::post_event))
}

fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ops::health))
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::ETAG,
                header::LINK,
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The whole API as an axum router.
pub fn app(state: AppState) -> Router {
    let cfg = state.config().clone();
    let (protected, _) = protected_routes().split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    // Everything except /health and the docs goes through the auth middleware (which also
    // rate-limits).
    let protected = protected.layer(from_fn_with_state(state.clone(), auth_and_rate_limit));
    let router = Router::new()
        .merge(protected)
        .merge(public)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .fallback(|| async { AppError::not_found("no such resource; see /docs for the API") });
    // a span per request only when someone reads it (OPSKIT_LOG=tower_http=debug): it costs
    // a few percent of a request otherwise
    let router = if tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) {
        router.layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::debug_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
            },
        ))
    } else {
        router
    };
    let router = router.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(state.clone(), finish_response))
            // the request timeout is applied in finish_response
            .option_layer(cors(&cfg.cors_origins))
            .layer(RequestBodyLimitLayer::new(cfg.body_limit_bytes))
            .layer(DefaultBodyLimit::max(cfg.body_limit_bytes)),
    );
    router.with_state(state)
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: AppState,
    generated_admin_password: Option<SecretString>,
}

impl Application {
    /// Connects to the database, runs migrations, creates the first admin if there are no
    /// users, and binds the listener (use port 0 for any free port).
    pub async fn build(config: ServerConfig) -> Result<Application, Error> {
        let db = users::open(&config.database_url).await?;
        let generated = users::ensure_admin(&db, config.admin_password.clone()).await?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr()?;
        let state = AppState::new(db, config).await?;
        Ok(Application {
            listener,
            addr,
            state,
            generated_admin_password: generated,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The `admin` password, when this start created the admin and generated it.
    pub fn generated_admin_password(&self) -> Option<&SecretString> {
        self.generated_admin_password.as_ref()
    }

    /// Serves until `shutdown` completes, then stops accepting and drains in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let state = self.state.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Some(l) = state.limiter() {
                    l.retain_recent();
                }
                if let Some(l) = state.login_limiter() {
                    l.retain_recent();
                }
            }
        });
        let router = app(self.state.clone());
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        sweeper.abort();
        result.map_err(Error::Io)
    }
}
