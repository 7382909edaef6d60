//! A local axum fixture server on 127.0.0.1:0 that misbehaves on demand and records every
//! request it receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

#[derive(Default)]
pub struct FixtureState {
    pub log: Mutex<Vec<Recorded>>,
    pub counters: Mutex<HashMap<String, u32>>,
    pub token_fetches: AtomicU64,
    pub valid_token: Mutex<String>,
    pub expires_in: AtomicU64,
    pub refresh_token: Mutex<String>,
    pub port: AtomicU64,
}

impl FixtureState {
    fn bump(&self, key: &str) -> u32 {
        let mut c = self.counters.lock().unwrap();
        let e = c.entry(key.to_string()).or_insert(0);
        *e += 1;
        *e
    }
    pub fn count(&self, key: &str) -> u32 {
        *self.counters.lock().unwrap().get(key).unwrap_or(&0)
    }
    /// Requests received whose path is `path`.
    pub fn hits(&self, path: &str) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
    /// Invalidate the current access token (the server starts answering 401).
    pub fn expire_token(&self) {
        *self.valid_token.lock().unwrap() = String::new();
    }
}

pub struct Fixture {
    pub addr: SocketAddr,
    pub state: Arc<FixtureState>,
}

impl Fixture {
    pub async fn start() -> Fixture {
        let state = Arc::new(FixtureState::default());
        state.expires_in.store(3600, Ordering::SeqCst);
        *state.refresh_token.lock().unwrap() = "ref-0".into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        state.port.store(u64::from(addr.port()), Ordering::SeqCst);
        let app = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fixture { addr, state }
    }
    pub fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

pub fn router(state: Arc<FixtureState>) -> Router {
    Router::new()
        .route("/fail/{n}", any(fail_n))
        .route("/status/{code}", any(status_code))
        .route("/retry-after/secs/{s}", any(retry_after_secs))
        .route("/retry-after/date/{s}", any(retry_after_date))
        .route("/retry-after/garbage", any(retry_after_garbage))
        .route("/reset", any(reset_mid_body))
        .route("/stall", any(stall))
        .route("/stall-body", get(stall_body))
        .route("/echo", any(echo))
        .route("/oauth/token", post(oauth_token))
        .route("/protected", get(protected))
        .route("/refresh", post(refresh))
        .route("/whoami", get(whoami))
        .route("/cached", get(cached))
        .route("/nostore", get(nostore))
        .route("/lastmod", get(lastmod))
        .route("/quota", get(quota))
        .route("/pages/number", get(pages_number))
        .route("/pages/offset", get(pages_offset))
        .route("/pages/link", get(pages_link))
        .route("/pages/evil", get(pages_evil))
        .route("/pages/cursor", get(pages_cursor))
        .route("/pages/next", get(pages_next))
        .route("/download/blob", get(download_blob))
        .route("/download/flaky", get(download_flaky))
        .route("/upload", post(upload))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

type St = State<Arc<FixtureState>>;

async fn record(State(st): St, req: Request, next: Next) -> Response {
    st.log.lock().unwrap().push(Recorded {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        headers: req.headers().clone(),
    });
    next.run(req).await
}

async fn fail_n(State(st): St, Path(n): Path<u32>) -> Response {
    let c = st.bump(&format!("fail/{n}"));
    if c <= n {
        (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
    } else {
        axum::Json(json!({"ok": true, "attempt": c})).into_response()
    }
}

async fn status_code(Path(code): Path<u16>) -> Response {
    let body = "x".repeat(10_000);
    (
        StatusCode::from_u16(code).unwrap(),
        [("x-fixture", "yes")],
        format!("error body {body}"),
    )
        .into_response()
}

async fn retry_after_secs(State(st): St, Path(s): Path<String>) -> Response {
    if st.bump("ra-secs") == 1 {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, s)],
            "slow down",
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

async fn retry_after_date(State(st): St, Path(s): Path<u64>) -> Response {
    if st.bump("ra-date") == 1 {
        let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s));
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, when)],
            "slow down",
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

async fn retry_after_garbage(State(st): St) -> Response {
    if st.bump("ra-garbage") == 1 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "soon, maybe")],
            "busy",
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

async fn reset_mid_body(State(st): St) -> Response {
    st.bump("reset");
    Response::builder()
        .header(header::CONTENT_LENGTH, "100000")
        .body(body_then_reset(vec![b'a'; 1000]))
        .unwrap()
}

/// A body that sends `data`, and once it is on the wire, breaks the connection.
fn body_then_reset(data: Vec<u8>) -> Body {
    let stream = futures::stream::unfold(Some(data), |state| async move {
        match state {
            Some(d) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(d)), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "cut",
                    )),
                    None,
                ))
            }
        }
    });
    Body::from_stream(stream)
}

async fn stall(State(st): St) -> Response {
    st.bump("stall");
    std::future::pending::<()>().await;
    "never".into_response()
}

async fn stall_body() -> Response {
    let first = futures::stream::iter(vec![Ok::<Bytes, std::io::Error>(Bytes::from_static(
        b"first",
    ))]);
    let rest = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    use futures::StreamExt;
    Response::builder()
        .body(Body::from_stream(first.chain(rest)))
        .unwrap()
}

async fn echo(req: Request) -> Response {
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(v.to_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    let body = axum::body::to_bytes(req.into_body(), 10 << 20)
        .await
        .unwrap();
    axum::Json(json!({
        "method": method,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn oauth_token(State(st): St, headers: HeaderMap, body: Bytes) -> Response {
    // client_secret_basic: base64("cid:csecret")
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let f = form_fields(&body);
    // client_secret_post: in the form
    let in_body = f.get("client_id").map(String::as_str) == Some("cid")
        && f.get("client_secret").map(String::as_str) == Some("csecret");
    if auth != "Basic Y2lkOmNzZWNyZXQ=" && !in_body {
        return (StatusCode::UNAUTHORIZED, "bad client").into_response();
    }
    if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, "bad grant").into_response();
    }
    // make concurrent callers overlap
    tokio::task::yield_now().await;
    let n = st.token_fetches.fetch_add(1, Ordering::SeqCst) + 1;
    let tok = format!("tok-{n}");
    *st.valid_token.lock().unwrap() = tok.clone();
    axum::Json(json!({
        "access_token": tok,
        "token_type": "Bearer",
        "expires_in": st.expires_in.load(Ordering::SeqCst),
        "scope": f.get("scope"),
    }))
    .into_response()
}

async fn protected(State(st): St, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let valid = st.valid_token.lock().unwrap().clone();
    if valid.is_empty() || auth != format!("Bearer {valid}") {
        st.bump("401");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "expired",
        )
            .into_response();
    }
    axum::Json(json!({"token": valid})).into_response()
}

async fn refresh(State(st): St, body: Bytes) -> Response {
    let f = form_fields(&body);
    let current = st.refresh_token.lock().unwrap().clone();
    if f.get("grant_type").map(String::as_str) != Some("refresh_token")
        || f.get("refresh_token") != Some(&current)
    {
        return (StatusCode::BAD_REQUEST, "invalid_grant").into_response();
    }
    let n = st.token_fetches.fetch_add(1, Ordering::SeqCst) + 1;
    let acc = format!("acc-{n}");
    *st.valid_token.lock().unwrap() = acc.clone();
    *st.refresh_token.lock().unwrap() = format!("ref-{n}");
    axum::Json(
        json!({"access_token": acc, "refresh_token": format!("ref-{n}"), "expires_in": 3600}),
    )
    .into_response()
}

async fn whoami(State(st): St, headers: HeaderMap) -> Response {
    let n = st.bump("whoami");
    let who = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_string();
    axum::Json(json!({"who": who, "served": n})).into_response()
}

async fn cached(State(st): St, headers: HeaderMap) -> Response {
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some("\"v1\"")
    {
        st.bump("cached-304");
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, "\"v1\"")]).into_response();
    }
    let n = st.bump("cached-200");
    (
        [
            (header::ETAG, "\"v1\""),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        axum::Json(json!({"version": 1, "served": n})),
    )
        .into_response()
}

const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

async fn lastmod(State(st): St, headers: HeaderMap) -> Response {
    if headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        == Some(LAST_MODIFIED)
    {
        st.bump("lastmod-304");
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let n = st.bump("lastmod-200");
    (
        [(header::LAST_MODIFIED, LAST_MODIFIED)],
        axum::Json(json!({"served": n})),
    )
        .into_response()
}

async fn nostore(State(st): St) -> Response {
    let n = st.bump("nostore");
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"served": n})),
    )
        .into_response()
}

async fn quota(State(st): St) -> Response {
    let n = st.bump("quota");
    if n == 1 {
        (
            [("ratelimit-remaining", "0"), ("ratelimit-reset", "7")],
            "last one",
        )
            .into_response()
    } else {
        (
            [("ratelimit-remaining", "99"), ("ratelimit-reset", "60")],
            "fine",
        )
            .into_response()
    }
}

const TOTAL_ITEMS: u64 = 23;

fn items(from: u64, count: u64) -> Vec<Value> {
    (from..(from + count).min(TOTAL_ITEMS))
        .map(|i| json!({"id": i + 1}))
        .collect()
}

#[derive(serde::Deserialize)]
struct PageQ {
    page: Option<u64>,
    per_page: Option<u64>,
    offset: Option<u64>,
    limit: Option<u64>,
    cursor: Option<String>,
}

async fn pages_number(Query(q): Query<PageQ>) -> Response {
    let per = q.per_page.unwrap_or(10);
    let page = q.page.unwrap_or(1).max(1);
    let total_pages = TOTAL_ITEMS.div_ceil(per);
    axum::Json(json!({"data": items((page - 1) * per, per), "total_pages": total_pages}))
        .into_response()
}

async fn pages_offset(Query(q): Query<PageQ>) -> Response {
    axum::Json(Value::Array(items(
        q.offset.unwrap_or(0),
        q.limit.unwrap_or(10),
    )))
    .into_response()
}

async fn pages_link(State(st): St, Query(q): Query<PageQ>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let port = st.port.load(Ordering::SeqCst);
    let per = 10;
    let mut resp = axum::Json(Value::Array(items((page - 1) * per, per))).into_response();
    let mut link = format!("<http://127.0.0.1:{port}/pages/link?page=4>; rel=\"last\"");
    if page * per < TOTAL_ITEMS {
        link = format!(
            "<http://127.0.0.1:{port}/pages/link?page={}>; rel=\"next\", {link}",
            page + 1
        );
    }
    resp.headers_mut()
        .insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    resp
}

async fn pages_evil(State(st): St) -> Response {
    let port = st.port.load(Ordering::SeqCst);
    let mut resp = axum::Json(Value::Array(items(0, 10))).into_response();
    // same port, other host name: another origin
    let link = format!("<http://localhost:{port}/pages/link?page=2>; rel=\"next\"");
    resp.headers_mut()
        .insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    resp
}

async fn pages_cursor(Query(q): Query<PageQ>) -> Response {
    let from: u64 = q
        .cursor
        .as_deref()
        .and_then(|c| c.strip_prefix('c'))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let next = if from + 5 < TOTAL_ITEMS {
        json!(format!("c{}", from + 5))
    } else {
        Value::Null
    };
    axum::Json(json!({"items": items(from, 5), "meta": {"next": next}})).into_response()
}

async fn pages_next(Query(q): Query<PageQ>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let per = 7;
    let next = if page * per < TOTAL_ITEMS {
        json!(format!("/pages/next?page={}", page + 1))
    } else {
        Value::Null
    };
    axum::Json(json!({"results": items((page - 1) * per, per), "next": next})).into_response()
}

pub const BLOB_LEN: usize = 100_000;

pub fn blob() -> Vec<u8> {
    (0..BLOB_LEN).map(|i| (i % 251) as u8).collect()
}

fn range_start(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

fn serve_blob(headers: &HeaderMap) -> Response {
    let data = blob();
    match range_start(headers) {
        Some(from) if from >= data.len() => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{}", data.len()))],
        )
            .into_response(),
        Some(from) => (
            StatusCode::PARTIAL_CONTENT,
            [(
                header::CONTENT_RANGE,
                format!("bytes {from}-{}/{}", data.len() - 1, data.len()),
            )],
            data[from..].to_vec(),
        )
            .into_response(),
        None => data.into_response(),
    }
}

async fn download_blob(headers: HeaderMap) -> Response {
    serve_blob(&headers)
}

async fn download_flaky(State(st): St, headers: HeaderMap) -> Response {
    if st.bump("flaky-download") == 1 {
        let data = blob();
        return Response::builder()
            .header(header::CONTENT_LENGTH, BLOB_LEN.to_string())
            .body(body_then_reset(data[..40_000].to_vec()))
            .unwrap();
    }
    serve_blob(&headers)
}

/// A minimal multipart parser: enough to check names, file names, types and sizes.
async fn upload(headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = ct.split("boundary=").nth(1) else {
        return (StatusCode::BAD_REQUEST, "no boundary").into_response();
    };
    let delim = format!("--{boundary}");
    let text = body.to_vec();
    let mut parts = Vec::new();
    let mut rest: &[u8] = &text;
    while let Some(pos) = find(rest, delim.as_bytes()) {
        rest = &rest[pos + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(hend) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..hend]).to_string();
        let after = &rest[hend + 4..];
        let Some(end) = find(after, delim.as_bytes()) else {
            break;
        };
        let content = &after[..end - 2]; // strip CRLF before the delimiter
        let attr = |name: &str| {
            head.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{name}=\""))
                    .map(|v| v.split('"').next().unwrap_or("").to_string())
            })
        };
        let ctype = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        });
        parts.push(json!({
            "name": attr("name"),
            "filename": attr("filename"),
            "content_type": ctype,
            "len": content.len(),
            "text": if content.len() < 100 { Some(String::from_utf8_lossy(content).to_string()) } else { None },
        }));
        rest = &after[end..];
    }
    axum::Json(json!({"parts": parts})).into_response()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
