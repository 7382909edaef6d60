//! Request middleware: authentication + per-principal rate limiting, metrics, security headers,
//! and the net that turns every non-JSON error (axum's own rejections, 404, 405, 413, timeouts)
//! into a problem document.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::authenticate;
use crate::metrics::method_label;
use crate::problem::{AppError, PROBLEM_JSON, ThrottledResponse, problem_response};
use crate::state::AppState;

type Keyed = RateLimiter<
    Arc<str>,
    DefaultKeyedStateStore<Arc<str>>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A keyed GCRA limiter that also reports the numbers for `RateLimit-*` headers.
pub struct Limiter {
    inner: Keyed,
    limit: u32,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Limiter({}/min)", self.limit)
    }
}

/// What the limiter decided.
#[derive(Debug, Clone, Copy)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the quota is full again.
    pub reset: u64,
    /// Set when refused: seconds to wait.
    pub retry_after: Option<u64>,
}

impl Limiter {
    /// `per_minute` requests per minute, all of which may come in a burst; `None` when 0.
    pub fn per_minute(per_minute: u32) -> Option<Limiter> {
        let n = NonZeroU32::new(per_minute)?;
        Some(Limiter {
            inner: RateLimiter::keyed(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>(),
            limit: per_minute,
            clock: DefaultClock::default(),
        })
    }

    pub fn check(&self, key: &Arc<str>) -> RateInfo {
        match self.inner.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let per = snapshot.quota().replenish_interval();
                let reset = per
                    .saturating_mul(self.limit.saturating_sub(remaining))
                    .as_secs_f64()
                    .ceil() as u64;
                RateInfo {
                    limit: self.limit,
                    remaining,
                    reset,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let secs = (wait.as_secs_f64().ceil() as u64).max(1);
                RateInfo {
                    limit: self.limit,
                    remaining: 0,
                    reset: secs,
                    retry_after: Some(secs),
                }
            }
        }
    }

    /// Forgets keys whose quota is full again (keeps memory bounded).
    pub fn retain_recent(&self) {
        self.inner.retain_recent();
    }
}

// Header names written on (nearly) every response, parsed once.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");
const X_FRAME_OPTIONS: HeaderName = HeaderName::from_static("x-frame-options");
const REFERRER_POLICY: HeaderName = HeaderName::from_static("referrer-policy");
const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
const CONTENT_SECURITY_POLICY: HeaderName = HeaderName::from_static("content-security-policy");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds `RateLimit-*` (IETF draft) and `X-RateLimit-*` headers.
pub fn rate_headers(headers: &mut HeaderMap, info: &RateInfo) {
    let limit = HeaderValue::from(info.limit);
    let remaining = HeaderValue::from(info.remaining);
    let reset = HeaderValue::from(info.reset);
    headers.insert(X_RATELIMIT_LIMIT, limit.clone());
    headers.insert(X_RATELIMIT_REMAINING, remaining.clone());
    headers.insert(X_RATELIMIT_RESET, reset.clone());
    headers.insert(RATELIMIT_LIMIT, limit);
    headers.insert(RATELIMIT_REMAINING, remaining);
    headers.insert(RATELIMIT_RESET, reset);
    if let Some(secs) = info.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

/// The client's IP, as the auth middleware saw it (`None` when the server was built without
/// connect info, as in some tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The login rate-limit key.
    pub fn key(&self) -> Arc<str> {
        self.to_string().into()
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// The client's IP (from the socket).
pub fn client_ip(req: &Request) -> ClientIp {
    ClientIp(
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    )
}

/// Authenticates the request (a bad credential is a 401 at once), then applies the rate limit of
/// the principal (or of the client IP when anonymous).
pub async fn auth_and_rate_limit(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&req);
    req.extensions_mut().insert(ip);
    let principal = match authenticate(&state, ip.0, req.headers()).await {
        Ok(p) => p,
        // a failed or throttled credential check answers at once: its own throttle (before any
        // hashing) limits guessing, and the general limit must not turn a right password into
        // a different answer than a wrong one
        Err(e) => return e.into_response(),
    };
    let key = match &principal {
        Some(p) => Arc::clone(&p.id),
        None => format!("ip:{ip}").into(),
    };
    let info = state.limiter().map(|l| l.check(&key));
    let mut resp = match info {
        Some(RateInfo {
            retry_after: Some(secs),
            ..
        }) => AppError::TooManyRequests(secs).into_response(),
        _ => {
            if let Some(p) = principal {
                req.extensions_mut().insert(p);
            }
            next.run(req).await
        }
    };
    // a 429 of the guessing throttle (a login) describes another budget than these headers
    if let Some(info) = info
        && resp.extensions().get::<ThrottledResponse>().is_none()
    {
        rate_headers(resp.headers_mut(), &info);
    }
    resp
}

/// What every response goes through, in one layer (each `from_fn` layer costs a boxed future and
/// a service clone per request): turns error responses into problem documents, adds the
/// security headers, and counts and times the request by route and status.
pub async fn finish_response(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    // the caller's X-Request-Id, or a new one; handlers and logs see it on the request, the
    // caller gets it back on the response
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(v) => v.clone(),
        None => {
            let v = new_request_id();
            req.headers_mut().insert(X_REQUEST_ID, v.clone());
            v
        }
    };
    // both cheap to clone: a standard method is inline, a matched path is shared
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    // a cheap clone (shared bytes), kept for error details
    let uri = req.uri().clone();
    // a request with a body: note when the body has fully arrived, so that a timeout while
    // waiting for it is the client's 408 and not the server's 503
    let body_done = has_body(&req).then(|| {
        let done = Arc::new(AtomicBool::new(false));
        let watched = WatchedBody {
            inner: std::mem::take(req.body_mut()),
            done: Arc::clone(&done),
        };
        *req.body_mut() = Body::new(watched);
        done
    });
    let mut resp = with_deadline(
        next.run(req),
        start,
        state.config().request_timeout,
        body_done.as_deref(),
    )
    .await;
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        let allowed = route
            .as_ref()
            .and_then(|r| state.allowed_methods(r.as_str()));
        resp = into_problem(resp, &method, uri.path(), allowed).await;
    }
    let docs = uri.path().starts_with("/docs");
    security_headers(resp.headers_mut(), docs);
    resp.headers_mut().entry(X_REQUEST_ID).or_insert(request_id);
    state.metrics().record(
        method_label(&method),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        resp.status().as_u16(),
        start.elapsed(),
    );
    resp
}

/// A random (v4) UUID from the thread-local generator (no system call per request).
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text: &str = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Whether a request announces a body.
fn has_body(req: &Request) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// A request body that notes when it has been read to the end.
struct WatchedBody {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl axum::body::HttpBody for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Runs the request with the server's request timeout: 408 (and the connection closed) when it
/// runs out while the request body has not fully arrived, 503 otherwise; the caller turns either
/// into a problem document. The timer is only armed when the request does not finish on its
/// first poll: a request answered from memory never touches the timer wheel, which under load
/// costs more than the rest of such a request (a lock and often a wake-up of the other worker
/// thread).
async fn with_deadline(
    fut: impl std::future::Future<Output = Response>,
    start: Instant,
    timeout: std::time::Duration,
    body_done: Option<&AtomicBool>,
) -> Response {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    if let Poll::Ready(resp) = first {
        return resp;
    }
    match tokio::time::timeout_at((start + timeout).into(), fut).await {
        Ok(resp) => resp,
        Err(_) if body_done.is_some_and(|d| !d.load(Ordering::Relaxed)) => {
            let mut resp = StatusCode::REQUEST_TIMEOUT.into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Security headers on every response (a looser CSP on `/docs`, whose page runs its own script;
/// a CSP set by the handler is kept).
fn security_headers(h: &mut HeaderMap, docs: bool) {
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        CROSS_ORIGIN_OPENER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let csp = if docs {
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    };
    // a handler that sets its own (the status page, which allows its one stylesheet) keeps it
    h.entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(csp));
    if !docs && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Turns an error response that is not already a problem document into one, keeping its status
/// and headers (`Allow`, `Retry-After`, …).
async fn into_problem(
    resp: Response,
    method: &Method,
    path: &str,
    allowed: Option<&str>,
) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON) || ct.starts_with("text/html"));
    // a problem document already, or a page written for a browser (the status page's own
    // error pages)
    if is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // what axum or tower-http said, when it said something short and textual
    let original = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|s| !s.trim().is_empty());
    let detail = match status {
        StatusCode::NOT_FOUND => format!("no such resource: {path}"),
        StatusCode::METHOD_NOT_ALLOWED => {
            // the router adds `Allow` outside this layer; the route's methods come from the
            // API description, which is generated from the same handlers
            let allow = allowed.unwrap_or("");
            let method = method_label(method);
            if allow.is_empty() {
                format!("method {method} is not allowed on {path}")
            } else {
                format!("method {method} is not allowed on {path}; allowed: {allow}")
            }
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "request body is too large; see --body-limit on the server".to_owned()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the body as JSON with `Content-Type: application/json`".to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => {
            "the request body did not arrive in time; send it at once, or raise --request-timeout on the server".to_owned()
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            "the request took too long and was abandoned; retry later".to_owned()
        }
        s if s.is_server_error() => {
            tracing::error!(status = %s, body = ?original, "unhandled server error");
            "internal error; the server log has the details".to_owned()
        }
        _ => original.unwrap_or_else(|| "request rejected".to_owned()),
    };
    let problem = problem_response(status, Some(detail), None);
    let mut resp = Response::from_parts(parts, Body::empty());
    let (pparts, pbody) = problem.into_parts();
    *resp.body_mut() = pbody;
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    if let Some(ct) = pparts.headers.get(header::CONTENT_TYPE) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    resp
}
