//! `opskit monitor validate|check|run|status` as a user runs them.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use predicates::prelude::*;
use serde_json::Value;

fn opskit() -> Command {
    Command::cargo_bin("opskit").expect("binary built")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP service with `/up` (200) and `/down` (503).
fn service(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let app = axum::Router::new()
            .route(
                "/up",
                get(|| async { axum::Json(serde_json::json!({"status": "UP"})) }),
            )
            .route(
                "/down",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    })
}

fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn validate_names_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(
        &f,
        "[destinations.ops]\ntype = \"slack\"\nwebhook = \"env:SLACK_URL\"\n\n[[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://127.0.0.1:1/\"\nalerts = [\"opz\"]\n",
    )
    .unwrap();
    opskit()
        .args(["monitor", "validate"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "monitor.toml:5: monitor[api].alerts: no destination named \"opz\" (defined: ops)",
        ));
    std::fs::write(
        &f,
        "[[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://127.0.0.1:1/\"\ninterval = \"soon\"\n",
    )
    .unwrap();
    opskit()
        .args(["monitor", "validate"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("monitor[api].interval"));
    std::fs::write(
        &f,
        "[[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://127.0.0.1:1/\"\n",
    )
    .unwrap();
    opskit()
        .args(["monitor", "validate"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::contains("valid: 1 monitors"));
}

#[test]
fn check_runs_every_monitor_once_with_exit_codes() {
    let rt = runtime();
    let addr = service(&rt);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(
        &f,
        format!(
            "[[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"http://{addr}/up\"\nconditions = [\".status == 200\", '.body.status == \"UP\"', \".response_time_ms < 5000\"]\n\n\
             [[monitor]]\nname = \"web\"\nkind = \"http\"\ntarget = \"http://{addr}/down\"\nconditions = [\".status == 200\"]\n"
        ),
    )
    .unwrap();
    let out = opskit()
        .args(["monitor", "check", "-o", "json", "--config"])
        .arg(&f)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[0]["monitor"], "api");
    assert_eq!(v[0]["status"], "up");
    assert_eq!(v[1]["status"], "down");
    assert_eq!(v[1]["failed_condition"]["condition"], ".status == 200");
    assert_eq!(v[1]["failed_condition"]["seen"]["status"], 503);
    opskit()
        .args(["monitor", "check", "--only", "api", "--config"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::contains("api").and(predicate::str::contains("up")));
    opskit()
        .args(["monitor", "check", "--only", "nope", "--config"])
        .arg(&f)
        .assert()
        .code(2);
}

/// Requests a webhook receiver got: (webhook id, answered 2xx).
type Log = Arc<Mutex<Vec<(String, bool)>>>;

/// A receiver whose first request never gets an answer (the daemon is killed meanwhile); later
/// ones get 200.
fn receiver(rt: &tokio::runtime::Runtime) -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let l2 = log.clone();
    let addr = rt.block_on(async move {
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap| {
                let log = l2.clone();
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let first = {
                        let mut l = log.lock().unwrap();
                        let first = l.is_empty();
                        l.push((id, !first));
                        first
                    };
                    if first {
                        std::future::pending::<()>().await;
                    }
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

#[test]
fn kill_9_between_state_change_and_delivery_then_restart_delivers_exactly_once() {
    let rt = runtime();
    let (hook, log) = receiver(&rt);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(
        &f,
        format!(
            "[destinations.hook]\ntype = \"webhook\"\nurl = \"http://{hook}/hook\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\n\
             [[monitor]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"{closed}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             alerts = [{{ destination = \"hook\", failure_threshold = 1 }}]\n"
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("monitor.db").display());
    let start = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
            .args(["monitor", "run", "--database", &db, "--config"])
            .arg(&f)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut daemon = start();
    poll("the first delivery attempt", || {
        !log.lock().unwrap().is_empty()
    });
    daemon.kill().unwrap(); // SIGKILL: the state change is committed, the delivery is not
    daemon.wait().unwrap();

    let mut daemon = start();
    poll("the delivery after the restart", || {
        log.lock().unwrap().iter().any(|(_, answered)| *answered)
    });
    // Let it run a few more checks (still down): no second alert may appear.
    let seen = log.lock().unwrap().len();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "SIGTERM: clean exit, got {status:?}");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        seen,
        log.len(),
        "nothing delivered after the alert: {log:?}"
    );
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].0, log[1].0, "the same webhook id across the crash");
    assert!(log[0].0.starts_with("msg_"));
    assert_eq!(log.iter().filter(|(_, ok)| *ok).count(), 1);

    // The status shows the open incident.
    let out = opskit()
        .args(["monitor", "status", "-o", "json", "--database", &db])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["monitors"][0]["monitor"], "db");
    assert_eq!(v["monitors"][0]["status"], "down");
    assert!(
        v["monitors"][0]["incident"]["id"]
            .as_str()
            .unwrap()
            .starts_with("inc_")
    );
    assert_eq!(v["outbox"]["pending"], 0);
}
