//! What the tests that start `opskit serve` (or `opskit monitor run`) and their fixtures share:
//! the binary with the environment cleared of opskit's own variables, a running serve read from
//! its JSON log, a throwaway PostgreSQL database, an endpoint the test switches down and up, a
//! webhook receiver that records alerts, and polling with a deadline.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use sqlx::Connection as _;

/// The admin password every started serve gets (`OPSKIT_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// The opskit binary, with no opskit variable of the caller's environment leaking in.
pub fn opskit() -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"));
    c.env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_LOG")
        .env_remove("OPSKIT_MONITOR")
        .env_remove("OPSKIT_MONITOR_CONFIG")
        .env_remove("OPSKIT_MONITOR_LEASE");
    c
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Calls `f` every 20 ms until it is true; fails after 60 s naming `what`.
pub fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line of a child's stderr, read on a thread of its own (so the child never blocks on a
/// full pipe) until the pipe closes.
pub fn lines_of(stderr: ChildStderr) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `opskit serve` (JSON logs) on 127.0.0.1:0, killed on drop.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    lines: Receiver<String>,
    seen: Mutex<Vec<String>>,
}

impl Serve {
    /// `opskit serve --database DB EXTRA…`, once its "listening" line is logged (60 s at most).
    pub fn start(db: &str, extra: &[&str]) -> Serve {
        let mut child = opskit()
            .args(["serve", "--bind", "127.0.0.1:0", "--database", db])
            .args(["--log-format", "json", "--rate-limit", "0"])
            .args(extra)
            .env("OPSKIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = lines_of(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not start: {seen:#?}");
            };
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "opskit serve listening"
            {
                break v["fields"]["addr"].as_str().unwrap().to_owned();
            }
            seen.push(line);
        };
        Serve {
            child,
            addr,
            lines: rx,
            seen: Mutex::new(seen),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn log(&self) -> String {
        let mut seen = self.seen.lock().unwrap();
        while let Ok(l) = self.lines.try_recv() {
            seen.push(l);
        }
        seen.join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// SIGTERM, then the exit status (within a deadline) and the log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // the reader thread ends with the pipe: take every line
                let deadline = Instant::now() + Duration::from_secs(5);
                while let Ok(l) = self
                    .lines
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    self.seen.lock().unwrap().push(l);
                }
                return (s, self.log());
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the lease holder string (`host:pid:…`) names this process.
    pub fn is_holder(&self, holder: &str) -> bool {
        is_holder(self.pid(), holder)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill SIG PID`, which must succeed.
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Whether a monitor lease holder (`host:pid:…`) is the process `pid`.
pub fn is_holder(pid: u32, holder: &str) -> bool {
    holder.contains(&format!(":{pid}:"))
}

/// The PostgreSQL URL, or None (skipped) outside CI; under CI=true a missing one fails.
pub fn pg_url() -> Option<String> {
    match std::env::var("OPSKIT_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "OPSKIT_TEST_POSTGRES_URL is not set (CI=true): run scripts/test, which starts PostgreSQL"
            );
            eprintln!("skipped: OPSKIT_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A fresh PostgreSQL database for one test; [`PgDb::remove`] drops it.
pub struct PgDb {
    base: String,
    name: String,
    pub url: String,
}

impl PgDb {
    /// A database named `opskit_{prefix}_{random}`, or None (skipped) without PostgreSQL.
    pub async fn create(prefix: &str) -> Option<PgDb> {
        let base = pg_url()?;
        let name = format!("opskit_{prefix}_{:016x}", rand_u64());
        let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let mut u = url::Url::parse(&base).unwrap();
        u.set_path(&format!("/{name}"));
        Some(PgDb {
            base,
            name,
            url: u.to_string(),
        })
    }

    /// Drops the database, whoever is still connected to it.
    pub async fn remove(&self) {
        if let Ok(mut c) = sqlx::PgConnection::connect(&self.base).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut c)
            .await;
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// The endpoint under watch: `/switch` answers with the status the test sets in `code`.
pub fn switch_endpoint(rt: &tokio::runtime::Runtime, code: Arc<AtomicU16>) -> SocketAddr {
    rt.block_on(async move {
        let app = axum::Router::new().route(
            "/switch",
            get(move || {
                let c = code.load(Ordering::SeqCst);
                async move { StatusCode::from_u16(c).unwrap() }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    })
}

/// monitor.toml for the fail-over tests: one HTTP monitor every 500 ms on the
/// [`switch_endpoint`] `svc`, alerting the [`webhook_receiver`] `hook` after 2 failures and
/// resolving after 2 successes.
pub fn switch_monitor_config(hook: SocketAddr, svc: SocketAddr) -> String {
    format!(
        "[destinations.hook]\ntype = \"webhook\"\nurl = \"http://{hook}/hook\"\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\n\
         [[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://{svc}/switch\"\n\
         interval = \"500ms\"\ntimeout = \"400ms\"\nconditions = [\".status == 200\"]\n\
         alerts = [{{ destination = \"hook\", failure_threshold = 2, success_threshold = 2 }}]\n"
    )
}

/// Every alert a [`webhook_receiver`] got: (webhook id, event, incident id).
pub type Alerts = Arc<Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on `/hook` that records every alert posted to it.
pub fn webhook_receiver(rt: &tokio::runtime::Runtime) -> (SocketAddr, Alerts) {
    let log: Alerts = Arc::default();
    let l2 = log.clone();
    let addr = rt.block_on(async move {
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let log = l2.clone();
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    log.lock().unwrap().push((
                        id,
                        v["event"].as_str().unwrap_or_default().to_string(),
                        v["incident_id"].as_str().unwrap_or_default().to_string(),
                    ));
                    StatusCode::OK
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    });
    (addr, log)
}

/// How many alerts of `event` (trigger, resolve, …) were received.
pub fn events(alerts: &Alerts, event: &str) -> usize {
    alerts
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.1 == event)
        .count()
}

/// An API stand-in on 127.0.0.1: every request (any method, any path) goes to `handle`, on a
/// runtime of its own thread, so synchronous tests can run the binary against it. Its address.
pub fn api_stand_in<F>(handle: F) -> SocketAddr
where
    F: Fn(
            axum::http::Method,
            axum::http::Uri,
            HeaderMap,
            axum::body::Bytes,
        ) -> axum::response::Response
        + Clone
        + Send
        + Sync
        + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().fallback(
                move |method: axum::http::Method,
                      uri: axum::http::Uri,
                      headers: HeaderMap,
                      body: axum::body::Bytes| {
                    let handle = handle.clone();
                    async move { handle(method, uri, headers, body) }
                },
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}
