//! The router ([`app`]) and the listening server ([`Application`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use secrecy::SecretString;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::ServerConfig;
use crate::middleware::{auth_and_rate_limit, finish_response};
use crate::openapi::ApiDoc;
use crate::problem::AppError;
use crate::routes::{events, monitors, ops, servers, session};
pub use crate::state::AppState;
use crate::{Error, users};

/// The OpenAPI document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protected_routes())
        .merge(public_routes())
        .merge(heartbeat_routes())
        .merge(crate::routes::status::documented())
        .split_for_parts();
    crate::openapi::finish(doc)
}

/// Every route that needs a credential, each module's router merged.
fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(servers::router())
        .merge(session::router())
        .merge(ops::router())
        .merge(events::router())
        .merge(monitors::router())
}

fn public_routes() -> OpenApiRouter<AppState> {
    ops::public_router()
}

/// `POST /heartbeat/{token}`: no credential (the token is the secret), but behind the same
/// middleware as the API for its per-client rate limit.
fn heartbeat_routes() -> OpenApiRouter<AppState> {
    crate::routes::heartbeat::router()
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
    let (protected, _) = protected_routes()
        .merge(heartbeat_routes())
        .split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    // Everything except /health and the docs goes through the auth middleware (which also
    // rate-limits).
    let protected = protected.layer(from_fn_with_state(state.clone(), auth_and_rate_limit));
    let router = Router::new()
        .merge(protected)
        .merge(public)
        // the status page and badges: authenticated or public as --status-page says
        .merge(crate::routes::status::router(&state))
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
    /// Held while serving a SQLite database: a second server on it is refused.
    _serve_lock: Option<crate::serve_lock::ServeLock>,
}

impl Application {
    /// Connects to the database, runs migrations, creates the first admin if there are no
    /// users, and binds the listener (use port 0 for any free port).
    pub async fn build(config: ServerConfig) -> Result<Application, Error> {
        config.validate()?;
        let serve_lock = crate::serve_lock::acquire(&config.database_url)?;
        let db = users::open(&config.database_url).await?;
        let generated = users::ensure_admin(&db, config.admin_password.clone()).await?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr()?;
        let monitor = if config.monitor.on() {
            Some(start_monitor(&config, &db).await?)
        } else {
            None
        };
        let state = match AppState::with_monitor(db, config, monitor.clone()).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(m) = monitor {
                    let _ = m.stop().await;
                }
                return Err(e);
            }
        };
        Ok(Application {
            listener,
            addr,
            state,
            generated_admin_password: generated,
            _serve_lock: serve_lock,
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
    ///
    /// Each connection: HTTP/1 headers must arrive within
    /// [`ServerConfig::header_read_timeout`], a connection on which nothing moves for
    /// [`ServerConfig::idle_timeout`] is closed, and at most
    /// [`ServerConfig::max_connections`] are open at once (past that a new connection gets a
    /// short 503 and is closed).
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
                if let Some(t) = state.throttle() {
                    t.sweep();
                }
            }
        });
        let cfg = self.state.config().clone();
        let router = app(self.state.clone());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(cfg.max_connections));
        let busy = busy_response();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // out of file descriptors and the like: wait a little, as axum does
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                // full: a short answer written without blocking, then close
                let _ = stream.try_write(busy.as_bytes());
                tracing::debug!(%peer, "connection refused: --max-connections reached");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let io = TokioIo::new(Tracked {
                inner: stream,
                activity: Arc::clone(&activity),
            });
            let router = router.clone();
            let in_service = Arc::clone(&activity);
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let guard = Busy::enter(Arc::clone(&in_service));
                    let fut = tower::ServiceExt::oneshot(router.clone(), req);
                    async move {
                        let resp = fut.await;
                        drop(guard);
                        resp
                    }
                },
            );
            let conn = graceful.watch(builder.serve_connection(io, svc).into_owned());
            let idle = cfg.idle_timeout;
            tokio::spawn(async move {
                let _permit = permit;
                tokio::select! {
                    _ = conn => {}
                    () = activity.quiet_for(idle) => {
                        tracing::debug!(%peer, "closing an idle connection");
                    }
                }
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
        sweeper.abort();
        // The monitor finishes its checks and deliveries in flight and releases its lease.
        if let Some(m) = self.state.monitor() {
            m.clone().stop().await?;
            m.db().close().await;
        }
        Ok(())
    }
}

/// Starts the monitor engine on the server's database (its own migrations run there): the
/// monitor file's monitors, then those stored through the API, then the inventory's.
async fn start_monitor(
    config: &ServerConfig,
    db: &crate::store::Db,
) -> Result<opskit_monitor::service::Service, Error> {
    use opskit_monitor::service::{Service, ServiceOptions};
    let mdb = opskit_monitor::store::Db::open(&config.database_url).await?;
    let opts = ServiceOptions {
        config_path: config.monitor.config_path.clone(),
        lease: config.monitor.lease,
        refresh: config.monitor.refresh,
        sources: vec![
            opskit_monitor::definitions::ApiMonitors::new(mdb.clone()),
            crate::inventory::monitor_source(db.clone()),
        ],
        ..ServiceOptions::new(mdb.clone())
    };
    let service = match Service::start(opts, |e| {
        if e.is_warning() {
            tracing::warn!("monitor: {e}");
        } else {
            tracing::info!("monitor: {e}");
        }
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            mdb.close().await;
            return Err(e.into());
        }
    };
    if let Some(other) = service.config().settings.database.as_deref()
        && opskit_monitor::store::normalise_url(other).ok()
            != opskit_monitor::store::normalise_url(&config.database_url).ok()
    {
        tracing::warn!(
            ignored = %crate::store::redact_url(other),
            "the monitor file's settings.database is ignored: opskit serve's monitor uses the server's database"
        );
    }
    tracing::info!(
        instance = %service.holder(),
        lease = ?service.lease(),
        monitors = service.config().monitors.len(),
        "monitor engine started"
    );
    Ok(service)
}

/// What a connection over the cap gets before it is closed.
fn busy_response() -> String {
    let body = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"too many open connections; retry shortly"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// What happens on one connection: a count of reads and writes that moved bytes, and the number
/// of requests being handled. Updating it costs one relaxed atomic add per read or write.
#[derive(Default)]
struct Activity {
    moves: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    /// Completes once nothing has moved and no request has been in progress for `idle`
    /// (checked four times per period, so it fires between `idle` and 1.25 × `idle`).
    async fn quiet_for(&self, idle: Duration) {
        let step = (idle / 4).max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.moves.load(Ordering::Relaxed);
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let now = tokio::time::Instant::now();
            let moves = self.moves.load(Ordering::Relaxed);
            if moves != seen || self.busy.load(Ordering::Relaxed) > 0 {
                seen = moves;
                quiet_since = now;
            } else if now.duration_since(quiet_since) >= idle {
                return;
            }
        }
    }
}

/// A request in progress on a connection.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(a: Arc<Activity>) -> Busy {
        a.busy.fetch_add(1, Ordering::Relaxed);
        Busy(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that notes in [`Activity`] every read or write that moved bytes.
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl Tracked {
    fn moved(&self, poll: &Poll<std::io::Result<usize>>) {
        if matches!(poll, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.moves.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.moves.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
