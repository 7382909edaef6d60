//! Fixtures: an HTTP service whose answers the test controls, a receiver that records alert
//! deliveries, and databases (a temp SQLite file, or a fresh PostgreSQL database).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use opskit_monitor::store::Db;
use serde_json::{Value, json};

/// The HTTP service under watch: `/up`, `/down`, `/slow`, `/wrong-body`, `/flap` and
/// `/switch` (answers with the status the test sets).
pub struct Service {
    pub addr: SocketAddr,
    pub switch: Arc<AtomicU16>,
}

impl Service {
    pub async fn start() -> Service {
        let switch = Arc::new(AtomicU16::new(200));
        let flap = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/up", get(|| async { axum::Json(json!({"status": "UP"})) }))
            .route(
                "/down",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/wrong-body",
                get(|| async { axum::Json(json!({"status": "DOWN", "db": "unreachable"})) }),
            )
            .route(
                "/flap",
                get(move || {
                    let n = flap.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n.is_multiple_of(2) {
                            StatusCode::OK
                        } else {
                            StatusCode::INTERNAL_SERVER_ERROR
                        }
                    }
                }),
            )
            .route(
                "/switch",
                get({
                    let s = switch.clone();
                    move || {
                        let code = s.load(Ordering::SeqCst);
                        async move {
                            (
                                StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
                                axum::Json(json!({"status": if code == 200 {"UP"} else {"DOWN"}})),
                            )
                        }
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Service { addr, switch }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, code: u16) {
        self.switch.store(code, Ordering::SeqCst);
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

#[derive(Clone, Default)]
struct ReceiverState {
    log: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer with, in order; then 200 (or the route's answer).
    script: Arc<Mutex<VecDeque<u16>>>,
}

/// Records every request; answers from a script of statuses, then like a Jira or PagerDuty
/// fixture would.
pub struct Receiver {
    pub addr: SocketAddr,
    state: ReceiverState,
}

async fn receive(
    State(s): State<ReceiverState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.log.lock().unwrap().push(Received {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: value,
        raw: body.to_vec(),
    });
    if let Some(code) = s.script.lock().unwrap().pop_front() {
        let code = StatusCode::from_u16(code).unwrap();
        return (code, "scripted").into_response();
    }
    // Vendor-shaped answers.
    if path == "/v2/enqueue" {
        return (
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "success", "message": "Event processed"})),
        )
            .into_response();
    }
    if path.starts_with("/rest/api/3/search") {
        return axum::Json(json!({"issues": []})).into_response();
    }
    if path == "/rest/api/3/issue" {
        return (
            StatusCode::CREATED,
            axum::Json(
                json!({"id": "10001", "key": "OPS-7", "self": "http://x/rest/api/3/issue/10001"}),
            ),
        )
            .into_response();
    }
    if path.ends_with("/comment") {
        return (StatusCode::CREATED, axum::Json(json!({"id": "1"}))).into_response();
    }
    if path.ends_with("/transitions") {
        if method == axum::http::Method::GET {
            return axum::Json(json!({"transitions": [
                {"id": "11", "name": "In Progress", "to": {"name": "In Progress"}},
                {"id": "31", "name": "Done", "to": {"name": "Done"}}
            ]}))
            .into_response();
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = ReceiverState::default();
        let app = Router::new()
            .fallback(any(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn script(&self, codes: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(codes.iter().copied());
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }
}

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL URL, or None (skip) when unset outside CI; panics under CI=true.
pub fn pg_url() -> Option<String> {
    match std::env::var("OPSKIT_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "OPSKIT_TEST_POSTGRES_URL is not set (CI=true): run scripts/test, which starts PostgreSQL"
                );
            }
            eprintln!("skipping: OPSKIT_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A database URL for one test (its own SQLite file, or its own PostgreSQL database).
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("monitor.db").display()),
            Backend::Postgres => {
                let base = pg_url()?;
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
                let name = format!("opskit_mon_{}", uuid::Uuid::new_v4().simple());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut u = url::Url::parse(&base).unwrap();
                u.set_path(&format!("/{name}"));
                u.to_string()
            }
        };
        Some(TestDb { url, _dir: dir })
    }

    pub async fn open(&self) -> Db {
        Db::open(&self.url).await.unwrap()
    }
}

/// A config from TOML text (panics on an invalid one: the test wrote it).
pub fn config(text: &str) -> opskit_monitor::Config {
    opskit_monitor::config::parse("test.toml", text).unwrap()
}
