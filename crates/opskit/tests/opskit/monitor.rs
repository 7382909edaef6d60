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
    // one check at a time gives the same verdicts, in file order; 0 at once is refused
    let out = opskit()
        .args([
            "monitor",
            "check",
            "--concurrency",
            "1",
            "-o",
            "json",
            "--config",
        ])
        .arg(&f)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        (&v[0]["monitor"], &v[0]["status"]),
        (&"api".into(), &"up".into())
    );
    assert_eq!(
        (&v[1]["monitor"], &v[1]["status"]),
        (&"web".into(), &"down".into())
    );
    opskit()
        .args(["monitor", "check", "--concurrency", "0", "--config"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--concurrency"));
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

// ---------------------------------------------------------------------------------------------
// import-gatus, /metrics, reload, heartbeat receiver, OPSKIT_LOG (helper C's block)

/// A service for the converted Gatus endpoints: `/health` (up), `/degraded` (200 but not UP),
/// `/graphql` (answers only a GraphQL-wrapped body).
fn gatus_service(rt: &tokio::runtime::Runtime) -> SocketAddr {
    rt.block_on(async {
        let app = axum::Router::new()
            .route(
                "/health",
                get(|| async {
                    axum::Json(serde_json::json!({
                        "status": "UP", "checks": [{"name": "db"}, {"name": "cache"}]
                    }))
                }),
            )
            .route(
                "/degraded",
                get(|| async {
                    axum::Json(serde_json::json!({"status": "DEGRADED", "checks": []}))
                }),
            )
            .route(
                "/graphql",
                post(|body: String| async move {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    if v["query"]
                        .as_str()
                        .is_some_and(|q| q.contains("user(id: 1)"))
                    {
                        (
                            StatusCode::OK,
                            axum::Json(serde_json::json!({"data": {"user": {"name": "john"}}})),
                        )
                    } else {
                        (
                            StatusCode::BAD_REQUEST,
                            axum::Json(serde_json::json!({"errors": ["not a GraphQL request"]})),
                        )
                    }
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    })
}

fn gatus_fixture(addr: SocketAddr, dir: &std::path::Path) -> std::path::PathBuf {
    let text = include_str!("data/gatus.yaml").replace("__HTTP__", &addr.to_string());
    let f = dir.join("gatus.yaml");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn import_gatus_converts_lists_what_it_cannot_and_the_output_validates() {
    let rt = runtime();
    let addr = gatus_service(&rt);
    let dir = tempfile::tempdir().unwrap();
    let gatus = gatus_fixture(addr, dir.path());
    let out = opskit()
        .args(["monitor", "import-gatus"])
        .arg(&gatus)
        .assert()
        .code(6)
        .get_output()
        .clone();
    let toml = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    // What could not be converted is on stderr and in the output, never dropped silently.
    for item in [
        "not converted: storage",
        "not converted: ui",
        "not converted: alerting.discord",
        "not converted: endpoints[3] \"website\": conditions[2] `[DOMAIN_EXPIRATION] > 720h`",
        "not converted: endpoints[3] \"website\": alerts[0]",
        "not converted: endpoints[9] \"syslog\"",
    ] {
        assert!(stderr.contains(item), "stderr lacks {item:?}:\n{stderr}");
        assert!(
            toml.contains(&format!("#   {item}")),
            "output lacks {item:?}:\n{toml}"
        );
    }
    assert!(stderr.contains(" 6 items not converted"), "{stderr}");
    // Secrets from ${ENV} become env: references; thresholds, defaults and overrides apply.
    for line in [
        "[destinations.slack]\ntype = \"slack\"\nwebhook = \"env:SLACK_WEBHOOK_URL\"",
        "[destinations.slack-core]\ntype = \"slack\"\nwebhook = \"env:SLACK_CORE_WEBHOOK_URL\"",
        "[destinations.pagerduty]\ntype = \"pagerduty\"\nrouting_key = \"env:PD_ROUTING_KEY\"",
        "[destinations.custom]\ntype = \"webhook\"\nurl = \"https://hooks.example.com/gatus\"",
        "bearer = \"env:API_TOKEN\"",
        "password = \"env:SSH_PASSWORD\"",
        "{ destination = \"slack-core\", failure_threshold = 4, success_threshold = 2, send_resolved = true, description = \"API health check failed\" }",
        "{ destination = \"slack-core-2\", failure_threshold = 10,",
        "{ destination = \"pagerduty\", failure_threshold = 3, success_threshold = 5, send_resolved = true }",
        "{ destination = \"custom\", failure_threshold = 3, success_threshold = 2, send_resolved = false, description = \"graphql is down\" }",
        "remind_every = \"30m\"",
        "'.body.status == \"UP\"'",
        "\".cert.expires_in_days > 7\"",
        "name = \"website certificate\"\nkind = \"tls\"\ntarget = \"www.example.org:443\"",
        "kind = \"heartbeat\"\ntoken = \"backup-token-1234\"\ninterval = \"25h\"",
        "kind = \"dns\"\ntarget = \"example.org\"\nrecord_type = \"A\"\nserver = \"127.0.0.1:5353\"",
        "guard = [",
        "days = [\"mon\", \"thu\"]",
    ] {
        assert!(toml.contains(line), "output lacks {line:?}:\n{toml}");
    }
    assert!(
        !toml.contains("name = \"old-site\""),
        "a disabled endpoint is left out"
    );
    let converted = dir.path().join("monitor.toml");
    std::fs::write(&converted, &toml).unwrap();
    opskit()
        .args(["monitor", "validate"])
        .arg(&converted)
        .assert()
        .success()
        .stdout(predicate::str::contains("valid: 11 monitors"));

    // The converted http endpoints give the verdict Gatus' conditions give.
    let out = opskit()
        .args([
            "monitor",
            "check",
            "-o",
            "json",
            "--only",
            "api",
            "--only",
            "api-degraded",
            "--only",
            "graphql",
            "--only",
            "postgres",
            "--config",
        ])
        .arg(&converted)
        .env("API_TOKEN", "t0ken")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let by = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["monitor"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))
            .clone()
    };
    assert_eq!(by("api")["status"], "up", "{v}");
    assert_eq!(by("graphql")["status"], "up", "GraphQL body wrapped: {v}");
    assert_eq!(by("postgres")["status"], "up", "{v}");
    let degraded = by("api-degraded");
    assert_eq!(degraded["status"], "down", "{v}");
    assert_eq!(
        degraded["failed_condition"]["condition"],
        ".body.status == \"UP\""
    );
}

#[test]
fn import_gatus_all_converted_is_exit_0_and_bad_input_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gatus.yaml");
    std::fs::write(
        &f,
        "endpoints:\n  - name: web\n    url: https://example.org\n    conditions:\n      - \"[STATUS] == 200\"\n",
    )
    .unwrap();
    opskit()
        .args(["monitor", "import-gatus"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "conditions = [\n  \".status == 200\"",
        ))
        .stderr(predicate::str::is_empty());
    std::fs::write(&f, "endpoints: [\n").unwrap();
    opskit()
        .args(["monitor", "import-gatus"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a readable YAML file"));
    opskit()
        .args(["monitor", "import-gatus", "/nonexistent/gatus.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read"));
}

/// An HTTP service that records the paths it was asked for.
fn recording_service(rt: &tokio::runtime::Runtime) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = hits.clone();
    let addr = rt.block_on(async move {
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let h = h.clone();
            async move {
                h.lock().unwrap().push(uri.path().to_string());
                "ok"
            }
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    });
    (addr, hits)
}

/// `opskit monitor run` with its stderr collected line by line.
struct Daemon {
    child: std::process::Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(config: &std::path::Path, db: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"));
        cmd.args(["monitor", "run", "--database", db, "--config"])
            .arg(config)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
        let (pipe, lines) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for l in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
        Daemon { child, stderr }
    }

    fn said(&self, what: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }

    /// The address of `--listen 127.0.0.1:0`, from the start-up line.
    fn listening(&self) -> SocketAddr {
        let mut addr = None;
        poll("the listen address", || {
            addr = self.stderr.lock().unwrap().iter().find_map(|l| {
                l.split("listening on http://")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
            });
            addr.is_some()
        });
        addr.unwrap()
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_monitor(name: &str, addr: SocketAddr) -> String {
    format!(
        "[[monitor]]\nname = \"{name}\"\nkind = \"http\"\ntarget = \"http://{addr}/{name}\"\ninterval = \"500ms\"\n\n"
    )
}

#[test]
fn run_reloads_a_changed_file_and_on_sighup_and_keeps_the_old_config_when_the_new_is_invalid() {
    let rt = runtime();
    let (addr, hits) = recording_service(&rt);
    let count = |p: &str| hits.lock().unwrap().iter().filter(|h| *h == p).count();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(&f, http_monitor("a", addr)).unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let d = Daemon::start(&f, &db, &[], &[]);
    poll("monitor a checked", || count("/a") > 0);
    assert_eq!(count("/b"), 0);

    // A changed file is picked up: the new monitor starts being checked.
    std::fs::write(&f, http_monitor("a", addr) + &http_monitor("b", addr)).unwrap();
    poll("monitor b checked after the file changed", || {
        count("/b") > 0
    });
    assert!(d.said("configuration reloaded (2 monitors)") >= 1);

    // An invalid file is reported and not applied: both monitors keep being checked.
    std::fs::write(&f, "[[monitor]]\nname = \"a\"\nkind = \"nope\"\n").unwrap();
    poll("the invalid configuration reported", || {
        d.said("the new configuration is not applied") > 0
    });
    assert!(
        d.said("monitor[a].kind") > 0,
        "the error names the key: {:?}",
        d.stderr.lock().unwrap()
    );
    let (a0, b0) = (count("/a"), count("/b"));
    poll("the old monitors still checked", || {
        count("/a") > a0 + 1 && count("/b") > b0 + 1
    });

    // SIGHUP reloads even when the file's time did not change.
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::fs::write(&f, http_monitor("a", addr) + &http_monitor("c", addr)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    d.signal("-HUP");
    poll("monitor c checked after SIGHUP", || count("/c") > 0);
    let b1 = count("/b");
    let c1 = count("/c");
    poll("monitor c checked again", || count("/c") > c1 + 1);
    assert!(count("/b") <= b1 + 1, "b left the configuration");
    let status = d.stop();
    assert!(status.success(), "{status:?}");
}

/// `POST url` with an empty body, by hand: (status, body).
fn post_empty(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

fn http_request(addr: SocketAddr, req: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies: keep the lines that are not chunk sizes.
    (status, body)
}

/// The value of a sample line `name{labels} value` in a /metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn heartbeat_push_marks_up_unknown_token_is_404_and_silence_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(
        &f,
        "[[monitor]]\nname = \"nightly\"\nkind = \"heartbeat\"\ntoken = \"nightly-job-token\"\ninterval = \"1s\"\ngrace = \"500ms\"\n",
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let d = Daemon::start(&f, &db, &["--listen", "127.0.0.1:0"], &[]);
    let addr = d.listening();
    let up = "opskit_monitor_up{monitor=\"nightly\",group=\"\",kind=\"heartbeat\"}";
    let state = |s: &str| format!("opskit_monitor_state{{monitor=\"nightly\",state=\"{s}\"}}");
    let metric = |series: &str| sample(&get_text(addr, "/metrics").1, series);

    // No push since start: down once the period and grace have passed.
    poll("down without a push", || {
        metric(&state("down")) == Some(1.0)
    });
    // A push marks it up (at its next check).
    assert_eq!(post_empty(addr, "/heartbeat/nightly-job-token").0, 200);
    poll("up after a push", || metric(up) == Some(1.0));
    // An unknown token is refused.
    let (code, body) = post_empty(addr, "/heartbeat/not-a-configured-token");
    assert_eq!(code, 404, "{body}");
    // No further push within period + grace: down again.
    poll("down after the silence", || {
        metric(&state("down")) == Some(1.0)
    });
    assert_eq!(metric(up), Some(0.0));
    let status = d.stop();
    assert!(status.success(), "{status:?}");
}

/// Checks a Prometheus text exposition: comment and sample syntax, one TYPE per family before
/// its samples, label values escaped, histogram buckets cumulative up to `+Inf` = `_count`.
fn check_exposition(text: &str) {
    let mut types: std::collections::HashMap<String, String> = Default::default();
    let mut last_bucket: std::collections::HashMap<String, f64> = Default::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let (name, ty) = (p.next().unwrap(), p.next().unwrap());
            assert!(
                ["gauge", "counter", "histogram", "summary"].contains(&ty),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), ty.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        // name{labels} value
        let (series, value) = line.rsplit_once(' ').unwrap();
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = types
            .keys()
            .find(|f| {
                name == f.as_str()
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{f}{s}"))
            })
            .unwrap_or_else(|| panic!("no TYPE before {line}"));
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap();
            // label="value" pairs with \\ \" \n escapes only
            let mut chars = inner.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert_eq!(chars.next(), Some('"'), "{line}");
                loop {
                    match chars.next().unwrap() {
                        '\\' => {
                            assert!(matches!(chars.next(), Some('\\' | '"' | 'n')), "{line}")
                        }
                        '"' => break,
                        '\n' => panic!("raw newline in {line}"),
                        _ => {}
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
        }
        if types[family] == "histogram" && name.ends_with("_bucket") {
            let key = series.split(",le=").next().unwrap().to_string();
            let prev = last_bucket.insert(key, v).unwrap_or(0.0);
            assert!(v >= prev, "buckets not cumulative at {line}");
        }
    }
}

#[test]
fn metrics_endpoint_serves_prometheus_text_per_monitor() {
    let rt = runtime();
    let (addr, _hits) = recording_service(&rt);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(
        &f,
        format!(
            "{}[[monitor]]\nname = 'db \"primary\"\\ eu'\ngroup = \"core\"\nkind = \"tcp\"\ntarget = \"{closed}\"\ninterval = \"500ms\"\n",
            http_monitor("api", addr)
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let d = Daemon::start(&f, &db, &["--listen", "127.0.0.1:0"], &[]);
    let addr = d.listening();
    let db_name = "monitor=\"db \\\"primary\\\"\\\\ eu\"";
    let mut text = String::new();
    poll("two failures of db and a check of api", || {
        let (code, body) = get_text(addr, "/metrics");
        assert_eq!(code, 200);
        text = body;
        sample(
            &text,
            &format!("opskit_monitor_consecutive_failures{{{db_name}}}"),
        ) >= Some(2.0)
            && sample(
                &text,
                "opskit_monitor_checks_total{monitor=\"api\",result=\"up\"}",
            ) >= Some(1.0)
    });
    check_exposition(&text);
    assert_eq!(
        sample(
            &text,
            "opskit_monitor_up{monitor=\"api\",group=\"\",kind=\"http\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("opskit_monitor_up{{{db_name},group=\"core\",kind=\"tcp\"}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("opskit_monitor_state{{{db_name},state=\"down\"}}")
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            &format!("opskit_monitor_checks_total{{{db_name},result=\"down\"}}")
        ) >= Some(2.0)
    );
    let count = sample(
        &text,
        "opskit_monitor_check_duration_seconds_count{monitor=\"api\"}",
    )
    .unwrap();
    assert_eq!(
        sample(
            &text,
            "opskit_monitor_check_duration_seconds_bucket{monitor=\"api\",le=\"+Inf\"}"
        ),
        Some(count)
    );
    assert!(
        sample(
            &text,
            "opskit_monitor_last_check_duration_seconds{monitor=\"api\"}"
        )
        .is_some()
    );
    assert!(
        sample(
            &text,
            "opskit_monitor_schedule_lateness_seconds{quantile=\"0.99\"}"
        )
        .is_some_and(|v| v >= 0.0)
    );
    assert_eq!(
        sample(&text, "opskit_monitor_checks_skipped_total"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "opskit_monitor_monitors"), Some(2.0));
    let status = d.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn opskit_log_is_honoured_by_every_monitor_subcommand() {
    let rt = runtime();
    let (addr, _hits) = recording_service(&rt);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("monitor.toml");
    std::fs::write(&f, http_monitor("api", addr)).unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let gatus = dir.path().join("gatus.yaml");
    std::fs::write(&gatus, "endpoints:\n  - name: a\n    url: http://127.0.0.1:1/\n    conditions: [\"[STATUS] == 200\"]\n").unwrap();
    let runs: Vec<Vec<String>> = vec![
        vec!["check".into(), "--config".into(), f.display().to_string()],
        vec!["status".into(), "--database".into(), db.clone()],
        vec!["validate".into(), f.display().to_string()],
        vec!["import-gatus".into(), gatus.display().to_string()],
    ];
    for args in runs {
        // Quiet by default (warnings only)…
        let out = opskit()
            .arg("monitor")
            .args(&args)
            .env_remove("OPSKIT_LOG")
            .output()
            .unwrap();
        let quiet = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!quiet.contains("TRACE"), "{args:?}: {quiet}");
        // …and OPSKIT_LOG turns the log on.
        let out = opskit()
            .arg("monitor")
            .args(&args)
            .env("OPSKIT_LOG", "trace")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "{args:?}: OPSKIT_LOG=trace logged nothing:\n{log}"
        );
    }
}
