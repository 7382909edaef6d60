//! `opskit http GET --input FILE` (many URLs at once) and `--timing`, against a fixture server
//! on 127.0.0.1:0 of each test's own, which counts the requests it holds at once.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assert_cmd::Command;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    answered: AtomicUsize,
}

/// Counts a request in flight until it is dropped (answered, or abandoned by the client).
struct InFlight(Arc<Counters>);

impl InFlight {
    fn new(c: &Arc<Counters>) -> Self {
        let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        c.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

const OK_BODY: &str = r#"{"status":"ok"}"#;

/// A fixture server: `/ok/{i}` (20 ms of work, counted in flight), `/slow` (30 s, past every
/// timeout here), `/status/{code}`, `/last` (answers once 4 other requests were answered),
/// `/health` (needs the bearer token `t0ken`).
fn fixture() -> (String, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new()
                .route(
                    "/ok/{i}",
                    axum::routing::get(
                        |State(c): State<Arc<Counters>>, UrlPath(_i): UrlPath<u32>| async move {
                            let _guard = InFlight::new(&c);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            c.answered.fetch_add(1, Ordering::SeqCst);
                            ([("content-type", "application/json")], OK_BODY)
                        },
                    ),
                )
                .route(
                    "/slow",
                    axum::routing::get(|| async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        "late"
                    }),
                )
                .route(
                    "/status/{code}",
                    axum::routing::get(|UrlPath(code): UrlPath<u16>| async move {
                        (StatusCode::from_u16(code).unwrap(), "status")
                    }),
                )
                .route(
                    "/last",
                    axum::routing::get(|State(c): State<Arc<Counters>>| async move {
                        // answers only after the others: its result cannot come first
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                        while c.answered.load(Ordering::SeqCst) < 4
                            && tokio::time::Instant::now() < deadline
                        {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        "last"
                    }),
                )
                .route(
                    "/health",
                    axum::routing::get(|headers: HeaderMap| async move {
                        if headers.get("authorization").and_then(|v| v.to_str().ok())
                            == Some("Bearer t0ken")
                        {
                            (StatusCode::OK, OK_BODY).into_response()
                        } else {
                            (StatusCode::UNAUTHORIZED, "no token").into_response()
                        }
                    }),
                )
                .with_state(c);
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}"), counters)
}

/// A port on 127.0.0.1 where nothing listens: bound, then released.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

fn opskit(tmp: &Path) -> Command {
    let mut c = Command::cargo_bin("opskit").expect("binary built");
    c.env_remove("OPSKIT_PROFILE")
        .env("OPSKIT_CONFIG", tmp.join("no-config.toml"))
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("NO_COLOR", "1")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .current_dir(tmp)
        .timeout(Duration::from_secs(120));
    c
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn two_hundred_urls_give_two_hundred_lines_with_their_own_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, counters) = fixture();
    let refused = closed_port();
    // what each line is, by its number
    let kind = |n: usize| match n % 10 {
        3 => "slow",
        7 => "refused",
        5 => "503",
        _ => "ok",
    };
    let mut list = String::from("# health checks\n");
    for n in 2..=201 {
        let url = match kind(n) {
            "slow" => format!("{base}/slow"),
            "refused" => format!("http://127.0.0.1:{refused}/health"),
            "503" => format!("{base}/status/503"),
            _ => format!("{base}/ok/{n}"),
        };
        list.push_str(&url);
        list.push('\n');
    }
    std::fs::write(tmp.path().join("urls.txt"), list).unwrap();

    let out = opskit(tmp.path())
        .args([
            "http",
            "GET",
            "--input",
            "urls.txt",
            "--concurrency",
            "16",
            "--timeout",
            "2s",
            "--retries",
            "0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 200, "one line per URL; stderr: {stderr}");
    let mut seen = vec![false; 202];
    for r in &rows {
        let n = r["line"].as_u64().unwrap() as usize;
        assert!(!seen[n], "line {n} reported twice");
        seen[n] = true;
        match kind(n) {
            "slow" => {
                assert_eq!(r["error"]["kind"], "timeout", "{r}");
                assert!(r["status"].is_null(), "{r}");
            }
            "refused" => {
                assert_eq!(r["error"]["kind"], "connect", "{r}");
                assert!(r["status"].is_null(), "{r}");
            }
            "503" => {
                assert_eq!(r["status"], 503, "{r}");
                assert!(
                    r["error"].is_null(),
                    "a 503 is an answer without --check-status: {r}"
                );
            }
            _ => {
                assert_eq!(r["status"], 200, "{r}");
                assert_eq!(r["size"], OK_BODY.len(), "{r}");
                assert!(r["error"].is_null(), "{r}");
                assert!(r["latency_ms"].as_f64().unwrap() > 0.0, "{r}");
                assert_eq!(r["url"], format!("{base}/ok/{n}"));
            }
        }
    }
    assert!(
        seen[2..=201].iter().all(|s| *s),
        "every line has its result"
    );
    // unreachable and timed out: exit 3, and stderr says how many of what
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        stderr.contains("40 of 200 URLs failed") && stderr.contains("20 timeout"),
        "{stderr}"
    );
    let max = counters.max_in_flight.load(Ordering::SeqCst);
    assert!(
        max <= 16,
        "{max} requests in flight at once, above --concurrency 16"
    );
    assert!(max >= 2, "the requests ran one by one ({max} at once)");
}

#[test]
fn concurrency_is_a_bound_and_ordered_keeps_the_input_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, counters) = fixture();
    let list: String = (0..60).map(|i| format!("{base}/ok/{i}\n")).collect();
    std::fs::write(tmp.path().join("urls.txt"), list).unwrap();
    let out = opskit(tmp.path())
        .args([
            "get",
            "--input",
            "urls.txt",
            "--concurrency",
            "4",
            "--ordered",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&out.stdout);
    let numbers: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(
        numbers,
        (1..=60).collect::<Vec<u64>>(),
        "--ordered: input order"
    );
    let max = counters.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&max),
        "{max} in flight at once with --concurrency 4"
    );
}

#[test]
fn results_come_as_they_finish_unless_ordered() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = fixture();
    // line 1 is answered only after the four others
    let list = format!("{base}/last\n{base}/ok/1\n{base}/ok/2\n{base}/ok/3\n{base}/ok/4\n");
    std::fs::write(tmp.path().join("urls.txt"), list).unwrap();
    let out = opskit(tmp.path())
        .args(["get", "--input", "urls.txt", "--concurrency", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[4]["line"], 1, "the slowest comes last: {rows:?}");
    assert_eq!(rows[4]["size"], 4);
}

#[test]
fn a_malformed_url_is_reported_on_its_line_and_the_rest_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = fixture();
    let list = format!(
        "{base}/ok/1\nhttp://exa mple.com/\n\n# a comment\nftp://files.example/x\n{base}/ok/2\n"
    );
    std::fs::write(tmp.path().join("urls.txt"), list).unwrap();
    let out = opskit(tmp.path())
        .args(["http", "GET", "--input", "urls.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad line is a usage error: {stderr}"
    );
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let by_line = |n: u64| rows.iter().find(|r| r["line"] == n).unwrap();
    for n in [2, 5] {
        let r = by_line(n);
        assert_eq!(r["error"]["kind"], "bad_url", "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("line {n}: ")), "{msg}");
    }
    assert!(
        by_line(5)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("http://")
    );
    assert_eq!(by_line(1)["status"], 200);
    assert_eq!(by_line(6)["status"], 200);
    assert!(
        stderr.contains("2 of 4 URLs failed") && stderr.contains("line 2:"),
        "{stderr}"
    );
}

#[test]
fn the_seeds_health_check_of_several_apis_is_one_command() {
    // the seeds' exercise: query several health APIs, measure their response times, tell which
    // is down — with the API token from the environment and a deadline on each
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = fixture();
    let (other, _) = fixture();
    let down = closed_port();
    let list = format!(
        "# service health endpoints\n{base}/health\n{other}/health\nhttp://127.0.0.1:{down}/health\n{base}/status/503\n"
    );
    std::fs::write(tmp.path().join("services.txt"), list).unwrap();
    let out = opskit(tmp.path())
        .env("HEALTH_TOKEN", "t0ken")
        .args([
            "http",
            "GET",
            "--input",
            "services.txt",
            "--bearer",
            "env:HEALTH_TOKEN",
            "--check-status",
            "--timeout",
            "5s",
            "--retries",
            "0",
            "--ordered",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 4, "{stderr}");
    for r in &rows[..2] {
        assert_eq!(r["status"], 200, "the token went to every URL: {r}");
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(rows[2]["error"]["kind"], "connect", "{}", rows[2]);
    assert_eq!(rows[3]["status"], 503);
    assert_eq!(
        rows[3]["error"]["kind"], "http_5xx",
        "--check-status: {}",
        rows[3]
    );
    // the down service outranks the 5xx: exit 3
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("t0ken"), "{stderr}");
}

#[test]
fn a_named_profile_gives_every_line_its_base_url_and_auth_and_the_default_profile_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = fixture();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"api\"\n[profiles.api]\nbase_url = \"{base}\"\nretries = 0\n\
             [profiles.api.auth]\ntype = \"bearer\"\ntoken = \"env:HEALTH_TOKEN\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("paths.txt"),
        format!("/health\n{base}/health\n"),
    )
    .unwrap();
    let out = opskit(tmp.path())
        .env("OPSKIT_CONFIG", &config)
        .env("HEALTH_TOKEN", "t0ken")
        .args([
            "get",
            "--input",
            "paths.txt",
            "--profile",
            "api",
            "--ordered",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&out.stdout);
    assert_eq!(
        rows[0]["url"],
        format!("{base}/health"),
        "relative to base_url"
    );
    assert_eq!(rows[0]["status"], 200, "with the profile's token");
    assert_eq!(rows[1]["status"], 200);

    // without --profile the config's default profile stays out: a list may hold other origins
    let out = opskit(tmp.path())
        .env("OPSKIT_CONFIG", &config)
        .env("HEALTH_TOKEN", "t0ken")
        .args(["get", "--input", "paths.txt", "--ordered"])
        .output()
        .unwrap();
    let rows = lines(&out.stdout);
    assert_eq!(rows[0]["error"]["kind"], "bad_url", "{}", rows[0]);
    assert_eq!(rows[1]["status"], 401, "no token sent: {}", rows[1]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn urls_from_stdin_and_a_closed_stdout_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = fixture();
    let out = opskit(tmp.path())
        .args(["get", "--input", "-", "--output", "csv"])
        .write_stdin(format!("{base}/ok/1\n{base}/status/404\n"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("line,url,status,latency_ms,size,error\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "{text}");

    // `| head -1`: the reader goes away after one line
    let list: String = (0..300).map(|i| format!("{base}/ok/{i}\n")).collect();
    std::fs::write(tmp.path().join("urls.txt"), list).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["get", "--input", "urls.txt", "--concurrency", "2"])
        .env("OPSKIT_CONFIG", tmp.path().join("no-config.toml"))
        .env_remove("OPSKIT_PROFILE")
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"status\":200"), "{first}");
    // the pipe is closed here; the command must end by itself, quietly
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after its stdout closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "nothing on stderr: {err}");
}

#[test]
fn timing_shows_each_phase_and_a_total_above_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _) = fixture();
    let port = base.rsplit(':').next().unwrap();
    // a host name: the DNS lookup is made and timed
    let out = opskit(tmp.path())
        .args([
            "get",
            &format!("http://localhost:{port}/ok/1"),
            "--timing=json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"],
        "ok",
        "stdout keeps the body"
    );
    let t: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let total = t["total_ms"].as_f64().unwrap();
    for phase in [
        "dns_ms",
        "connect_ms",
        "wait_ms",
        "first_byte_ms",
        "transfer_ms",
    ] {
        let v = t[phase]
            .as_f64()
            .unwrap_or_else(|| panic!("{phase} measured: {t}"));
        assert!(
            v >= 0.0 && v <= total,
            "{phase} {v} within the total {total}: {t}"
        );
    }
    assert!(t["first_byte_ms"].as_f64().unwrap() >= t["connect_ms"].as_f64().unwrap());
    assert!(t["tls_ms"].is_null());
    assert!(
        t["notes"]["tls"].as_str().unwrap().contains("http://"),
        "{t}"
    );
    assert_eq!(t["status"], 200);

    // an IP address: no lookup, and the text says why instead of a number
    let out = opskit(tmp.path())
        .args(["get", &format!("{base}/ok/1"), "--timing"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for label in [
        "dns lookup",
        "tcp connect",
        "tls handshake",
        "first byte",
        "total",
    ] {
        assert!(stderr.contains(label), "{label} in: {stderr}");
    }
    assert!(stderr.contains("IP address"), "{stderr}");

    // a refused connection: the timing still comes, with the error
    let out = opskit(tmp.path())
        .args([
            "get",
            &format!("http://127.0.0.1:{}/", closed_port()),
            "--timing=json",
            "--retries",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let t: Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    assert!(t["first_byte_ms"].is_null(), "{t}");
    assert!(t["total_ms"].as_f64().is_some(), "{t}");
    let _ = std::io::stderr().flush();
}

#[test]
fn timing_of_https_measures_the_tls_handshake_apart_and_verifies_as_without() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = super::http::self_signed(&["localhost", "127.0.0.1"]);
    let port = super::http::https_server(&cert, &key);
    std::fs::write(tmp.path().join("ca.pem"), &cert).unwrap();
    let url = format!("https://localhost:{port}/");
    let timing_of = |stderr: &str| -> Value {
        let line = stderr
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("a timing line in: {stderr}"));
        serde_json::from_str(line).unwrap()
    };
    let phases_within_total = |t: &Value| {
        let total = t["total_ms"].as_f64().unwrap();
        let connect = t["connect_ms"].as_f64().expect("the TCP connect was timed");
        let tls = t["tls_ms"].as_f64().expect("the TLS handshake was timed");
        let dns = t["dns_ms"].as_f64().expect("localhost was looked up");
        assert!(tls > 0.0, "{t}");
        assert!(dns + connect + tls <= total, "{t}");
        assert!(t["first_byte_ms"].as_f64().unwrap() >= connect + tls, "{t}");
    };

    // --ca-bundle: TCP connect and TLS handshake apart, within the total
    let out = opskit(tmp.path())
        .args(["get", &url, "--ca-bundle", "ca.pem", "--timing=json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["tls"],
        true
    );
    let t = timing_of(&stderr);
    phases_within_total(&t);
    assert!(t["notes"].get("tls").is_none(), "{t}");
    assert!(t["notes"].get("connect").is_none(), "{t}");

    let out = opskit(tmp.path())
        .args(["get", &url, "--ca-bundle", "ca.pem", "--timing"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let row = |label: &str| {
        stderr
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label} in: {stderr}"))
            .to_owned()
    };
    assert!(row("tcp connect").contains(" ms"), "{stderr}");
    assert!(row("tls handshake").contains(" ms"), "{stderr}");

    // the configuration built for --timing verifies as reqwest's own: the self-signed
    // certificate without --ca-bundle fails the same way, with the same message
    let run = |timing: bool| {
        let mut cmd = opskit(tmp.path());
        cmd.args(["get", &url, "--retries", "0"]);
        if timing {
            cmd.arg("--timing=json");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, plain) = run(false);
    assert_eq!(code, Some(3), "{plain}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(plain.contains("--ca-bundle"), "{plain}");
    let (timed_code, timed_stdout, timed) = run(true);
    assert_eq!(timed_code, code, "{timed}");
    assert!(timed_stdout.is_empty(), "{timed_stdout}");
    // the same lines (a log line's time stamp aside), plus the timing
    let lines = |err: &str, skip_timing: bool| -> Vec<String> {
        err.lines()
            .filter(|l| !(skip_timing && l.starts_with('{')))
            .map(|l| match l.split_once(' ') {
                Some((stamp, rest)) if stamp.starts_with("20") => rest.to_owned(),
                _ => l.to_owned(),
            })
            .collect()
    };
    assert_eq!(lines(&timed, true), lines(&plain, false));
    let t = timing_of(&timed);
    assert!(
        t["tls_ms"].as_f64().is_some(),
        "the failed handshake was timed: {t}"
    );
    assert!(
        t["notes"]["tls"].as_str().unwrap().contains("failed"),
        "{t}"
    );

    // --insecure: still warned about on every run, and timed the same way
    let out = opskit(tmp.path())
        .args(["get", &url, "--insecure", "--timing=json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("NOT verified"),
        "{stderr}"
    );
    phases_within_total(&timing_of(&stderr));
}
