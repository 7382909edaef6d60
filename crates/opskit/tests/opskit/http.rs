//! `opskit http` / `get|post|…` / `config` against a fixture server on 127.0.0.1:0 that checks
//! every request the way the real APIs would.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use assert_cmd::Command;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use predicates::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------- fixture server

#[derive(Default)]
struct State {
    flaky: AtomicU32,
    flaky_post_keys: Mutex<Vec<String>>,
    cache_hits: AtomicU32,
    tokens_issued: AtomicU32,
    slow_started: AtomicU32,
}

fn state() -> &'static Arc<State> {
    static STATE: OnceLock<Arc<State>> = OnceLock::new();
    STATE.get_or_init(|| Arc::new(State::default()))
}

fn server() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
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
                let state = state().clone();
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = state.clone();
                        async move { handle(&state, method, uri, headers, body).await }
                    },
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        format!("http://{addr}")
    })
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn items(from: u64, to: u64) -> Vec<Value> {
    (from..to)
        .map(|i| json!({"id": i, "name": format!("host{i}"), "net": {"ip": format!("10.0.0.{i}")}}))
        .collect()
}

const TOTAL: u64 = 7;

fn download_body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

async fn handle(
    state: &State,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query_map(&uri);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let json_resp = |code: u16, v: Value| {
        (
            StatusCode::from_u16(code).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    let num = |k: &str, d: u64| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    match uri.path() {
        "/echo" => {
            let hdrs: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        Value::String(v.to_str().unwrap_or("").to_owned()),
                    )
                })
                .collect();
            let text = String::from_utf8_lossy(&body).into_owned();
            json_resp(
                200,
                json!({
                    "method": method.as_str(),
                    "query": q,
                    "headers": hdrs,
                    "body": text,
                    "json": serde_json::from_slice::<Value>(&body).ok(),
                }),
            )
        }
        "/users" => json_resp(
            200,
            json!([
                {"id": 1, "name": "Leanne", "address": {"city": "Gwenborough", "geo": {"lat": "-37.3"}}, "tags": ["a", "b"]},
                {"id": 2, "name": "Ervin, Jr.", "address": {"city": "Wisokyburgh", "geo": {"lat": "-43.9"}}, "tags": []}
            ]),
        ),
        "/text" => (StatusCode::OK, "plain words\n").into_response(),
        // integers past what an f64 holds exactly, as IDs from some APIs are
        "/bigint" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"[{"id":123456789012345678901,"small":12,"neg":-98765432109876543210}]"#,
        )
            .into_response(),
        // a redirect to the URL in `to` (another origin when it names localhost)
        "/goto" => (
            StatusCode::FOUND,
            [(header::LOCATION, q.get("to").cloned().unwrap_or_default())],
        )
            .into_response(),
        // the server's own key order, which is not alphabetical (written as text, so the
        // fixture's own JSON library cannot reorder it)
        "/ordered" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"[{"zulu":1,"alpha":{"yankee":"y","bravo":"b"},"mike":true}]"#,
        )
            .into_response(),
        p if p.starts_with("/status/") => {
            let code: u16 = p["/status/".len()..].parse().unwrap_or(500);
            json_resp(code, json!({"status": code}))
        }
        p if p.starts_with("/retry-after/") => {
            // always busy, asking to come back after N seconds
            let secs = &p["/retry-after/".len()..];
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, secs.to_owned()),
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                ],
                json!({"busy": true}).to_string(),
            )
                .into_response()
        }
        "/basic" => {
            // user "ops", password "s3cret"
            if auth == "Basic b3BzOnMzY3JldA==" {
                json_resp(200, json!({"user": "ops"}))
            } else {
                json_resp(401, json!({"error": "bad credentials"}))
            }
        }
        "/bearer" => {
            if auth == "Bearer tok-abc" {
                json_resp(200, json!({"ok": true}))
            } else {
                json_resp(401, json!({"error": "no token"}))
            }
        }
        "/apikey" => {
            let in_header = headers.get("x-api-key").and_then(|v| v.to_str().ok());
            if in_header == Some("k-123") || q.get("api_key").map(String::as_str) == Some("k-123") {
                json_resp(200, json!({"ok": true}))
            } else {
                json_resp(403, json!({"error": "no key"}))
            }
        }
        "/oauth/token" => {
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let basic_ok = auth == "Basic Y2xpOmNzZWNyZXQ="; // cli:csecret
            let body_ok = form.get("client_id").map(String::as_str) == Some("cli")
                && form.get("client_secret").map(String::as_str) == Some("csecret");
            let grant = form.get("grant_type").cloned().unwrap_or_default();
            let ok = match grant.as_str() {
                "client_credentials" => basic_ok || body_ok,
                "refresh_token" => form.get("refresh_token").map(String::as_str) == Some("r-1"),
                _ => false,
            };
            if ok {
                state.tokens_issued.fetch_add(1, Ordering::SeqCst);
                json_resp(
                    200,
                    json!({"access_token": format!("oauth-{grant}"), "token_type": "Bearer", "expires_in": 3600}),
                )
            } else {
                json_resp(400, json!({"error": "invalid_client"}))
            }
        }
        "/oauth/protected" => {
            if auth == "Bearer oauth-client_credentials" || auth == "Bearer oauth-refresh_token" {
                json_resp(200, json!({"granted": auth["Bearer ".len()..]}))
            } else {
                json_resp(401, json!({"error": "invalid_token"}))
            }
        }
        "/link" => {
            let page = num("page", 1);
            let size = 3;
            let from = (page - 1) * size;
            let to = (from + size).min(TOTAL);
            let mut resp = json_resp(200, Value::Array(items(from, to)));
            if to < TOTAL {
                let base = server();
                let next = format!("<{base}/link?page={}>; rel=\"next\"", page + 1);
                resp.headers_mut()
                    .insert(header::LINK, next.parse().unwrap());
            }
            resp
        }
        "/pages" => {
            let page = num("page", 1);
            let size = num("per_page", 3);
            let from = (page - 1) * size;
            let to = (from + size).min(TOTAL);
            let data = if from < TOTAL {
                items(from, to)
            } else {
                vec![]
            };
            json_resp(
                200,
                json!({"data": data, "total_pages": TOTAL.div_ceil(size), "page": page}),
            )
        }
        "/offset" => {
            let off = num("offset", 0);
            let lim = num("limit", 3);
            let to = (off + lim).min(TOTAL);
            let data = if off < TOTAL { items(off, to) } else { vec![] };
            json_resp(200, json!({"items": data}))
        }
        "/cursor" => {
            let start: u64 = q
                .get("cursor")
                .and_then(|c| c.strip_prefix("c"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let to = (start + 3).min(TOTAL);
            let next = if to < TOTAL {
                Value::String(format!("c{to}"))
            } else {
                Value::Null
            };
            json_resp(
                200,
                json!({"items": items(start, to), "meta": {"next": next}}),
            )
        }
        "/flaky" => {
            // 503 with Retry-After: 0 twice, then 200
            let n = state.flaky.fetch_add(1, Ordering::SeqCst);
            if n % 3 < 2 {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "0")],
                    "busy",
                )
                    .into_response()
            } else {
                json_resp(200, json!({"attempt": n % 3 + 1}))
            }
        }
        "/flaky-post" => {
            // without an Idempotency-Key: always 503; with one: 503 on its first attempt,
            // 201 on the next attempt carrying the same key
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let mut keys = state.flaky_post_keys.lock().unwrap();
            keys.push(key.clone());
            let seen = keys.iter().filter(|k| **k == key).count();
            if key.is_empty() || seen == 1 {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "0")],
                    "busy",
                )
                    .into_response()
            } else {
                json_resp(201, json!({"key": key, "attempts_with_key": seen}))
            }
        }
        "/counter" => {
            let n = state.cache_hits.fetch_add(1, Ordering::SeqCst) + 1;
            let mut r = json_resp(200, json!({"served": n}));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, "max-age=600".parse().unwrap());
            r
        }
        "/hang" => {
            // only the Ctrl-C test calls this, so the counter is its own
            state.slow_started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            json_resp(200, json!({}))
        }
        "/slow" => {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            json_resp(200, json!({}))
        }
        "/files/blob" => {
            let data = download_body();
            let range = headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|s| s.parse::<usize>().ok());
            let disp = "attachment; filename=\"../../evil/../report.bin\"";
            match range {
                Some(start) if start < data.len() => (
                    StatusCode::PARTIAL_CONTENT,
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                        (
                            header::CONTENT_RANGE,
                            format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
                        ),
                        (header::CONTENT_DISPOSITION, disp.to_owned()),
                    ],
                    data[start..].to_vec(),
                )
                    .into_response(),
                _ => (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                        (header::CONTENT_DISPOSITION, disp.to_owned()),
                        (header::ACCEPT_RANGES, "bytes".to_owned()),
                    ],
                    data,
                )
                    .into_response(),
            }
        }
        _ => json_resp(404, json!({"error": "no such fixture"})),
    }
}

// ---------------------------------------------------------------- helpers

/// `opskit` with a clean environment: no config file, no profile, a private cache dir.
fn opskit(tmp: &Path) -> Command {
    let mut c = Command::cargo_bin("opskit").expect("binary built");
    c.env_remove("OPSKIT_PROFILE")
        .env("OPSKIT_CONFIG", tmp.join("no-config.toml"))
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("NO_COLOR", "1")
        .current_dir(tmp)
        .timeout(std::time::Duration::from_secs(60));
    c
}

fn url(path: &str) -> String {
    format!("{}{path}", server())
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------- request items

#[test]
fn each_item_syntax_reaches_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("spec.json");
    std::fs::write(&spec, r#"{"cpu": 4}"#).unwrap();
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "rack 12").unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "post",
        &url("/echo"),
        "X-Trace:abc",
        "X-Empty;",
        "status==active",
        "name=web01",
        "port:=8080",
        "tags:=[\"a\",\"b\"]",
        &format!("spec:=@{}", spec.display()),
        &format!("notes=@{}", notes.display()),
        r"odd\=key=v",
    ]));
    let v = stdout_json(&out);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["headers"]["x-trace"], "abc");
    assert_eq!(v["headers"]["x-empty"], "");
    assert_eq!(v["headers"]["content-type"], "application/json");
    assert_eq!(v["query"]["status"], "active");
    assert_eq!(
        v["json"],
        json!({"name": "web01", "port": 8080, "tags": ["a", "b"], "spec": {"cpu": 4},
               "notes": "rack 12", "odd=key": "v"})
    );
}

#[test]
fn form_multipart_raw_file_and_stdin_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "post",
        &url("/echo"),
        "--form",
        "a=1",
        "b=x y",
    ])));
    assert_eq!(
        v["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(v["body"], "a=1&b=x+y");

    let f = tmp.path().join("cert.pem");
    std::fs::write(&f, "PEM-DATA").unwrap();
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "post",
        &url("/echo"),
        "comment=nightly",
        &format!("cert@{}", f.display()),
    ])));
    let ct = v["headers"]["content-type"].as_str().unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let body = v["body"].as_str().unwrap();
    assert!(
        body.contains("filename=\"cert.pem\"") && body.contains("PEM-DATA"),
        "{body}"
    );
    assert!(body.contains("nightly"));

    let raw = tmp.path().join("body.xml");
    std::fs::write(&raw, "<a/>").unwrap();
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "put",
        &url("/echo"),
        &format!("@{}", raw.display()),
        "Content-Type:application/xml",
    ])));
    assert_eq!(v["body"], "<a/>");
    assert_eq!(v["headers"]["content-type"], "application/xml");

    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .args(["post", &url("/echo"), "Content-Type:application/json"])
            .write_stdin(r#"{"from": "stdin"}"#),
    ));
    assert_eq!(v["json"], json!({"from": "stdin"}));
}

#[test]
fn bad_items_and_flags_are_usage_errors_that_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    opskit(tmp.path())
        .args(["post", &url("/echo"), "port:={oops"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`port:={oops`"))
        .stderr(predicate::str::contains("not valid JSON"));
    opskit(tmp.path())
        .args(["get", &url("/echo"), "loneword"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`loneword`"))
        .stderr(predicate::str::contains("hint:"));
    opskit(tmp.path())
        .args(["get", &url("/echo"), "--timeout", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a duration"));
    opskit(tmp.path())
        .args(["get", &url("/echo"), "--no-such-flag"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--no-such-flag"));
    opskit(tmp.path())
        .args(["get", &url("/echo"), "--filter", ".a | nosuchfn"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nosuchfn"));
    opskit(tmp.path())
        .args(["get", "/relative"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no profile"));
}

// ---------------------------------------------------------------- offline, curl, verbose

#[test]
fn offline_prints_the_request_with_secrets_redacted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "post",
        "http://127.0.0.1:9/servers",
        "--offline",
        "--bearer",
        "tok-abc",
        "name=web",
        "q==1",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("POST /servers?q=1 HTTP/1.1\n"), "{text}");
    assert!(text.contains("Authorization: Bearer <redacted>"), "{text}");
    assert!(!text.contains("tok-abc"), "{text}");
    assert!(text.contains("{\"name\":\"web\"}"), "{text}");
}

#[test]
fn offline_prints_only_the_parts_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "post",
        "http://127.0.0.1:9/servers",
        "--offline",
        "--print",
        "B",
        "name=web",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"name\":\"web\"}\n");
}

#[test]
fn curl_output_keeps_secret_references_as_shell_expressions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "post",
        "http://127.0.0.1:9/servers",
        "--curl",
        "--bearer",
        "env:API_TOKEN",
        "name=web",
        "--timeout",
        "5s",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("curl -X POST --max-time 5 "), "{text}");
    assert!(
        text.contains("\"Authorization: Bearer ${API_TOKEN}\""),
        "{text}"
    );
    assert!(
        text.contains("--data-binary '{\"name\":\"web\"}'"),
        "{text}"
    );
}

#[test]
fn verbose_redacts_secrets_in_headers_and_query() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).env("MY_KEY", "k-123").args([
        "get",
        &url("/apikey"),
        "--api-key",
        "api_key=env:MY_KEY",
        "--api-key-in",
        "query",
        "-v",
        "Cookie:session=abcdef",
        "X-Api-Key:k-123",
    ]));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("GET /apikey?api_key=%3Credacted%3E"), "{all}");
    assert!(all.contains("<redacted>"), "{all}");
    assert!(!all.contains("k-123"), "{all}");
    assert!(!all.contains("abcdef"), "{all}");
    assert!(all.contains("HTTP/1.1 200"), "{all}");
}

#[test]
fn print_selects_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--print", "h"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_lowercase()
            .contains("content-type: application/json"),
        "{text}"
    );
    assert!(!text.contains("Leanne"), "{text}");
}

// ---------------------------------------------------------------- auth

#[test]
fn basic_auth_with_password_from_each_source() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    for secret in [
        "ops:s3cret".to_owned(),
        "ops:env:OPS_PW".to_owned(),
        format!("ops:file:{}", pw.display()),
        "ops:cmd:printf s3cret".to_owned(),
    ] {
        let v = stdout_json(&run_ok(opskit(tmp.path()).env("OPS_PW", "s3cret").args([
            "get",
            &url("/basic"),
            "--auth",
            &secret,
            "--check-status",
        ])));
        assert_eq!(v["user"], "ops", "{secret}");
    }
    // no password and no terminal: a clear usage error, not a hang
    opskit(tmp.path())
        .args(["get", &url("/basic"), "--auth", "ops"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no password"));
}

#[test]
fn auth_without_password_prompts_on_the_terminal() {
    // `script` (util-linux) gives opskit a pseudo-terminal; the password is typed into it.
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("opskit");
    let cmd = format!(
        "{} get {} --auth ops --check-status",
        bin.display(),
        url("/basic")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("OPSKIT_CONFIG", tmp.path().join("none.toml"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`script` from util-linux is needed for the terminal prompt test");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"s3cret\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("password for ops"), "{text}");
    assert!(text.contains("\"user\": \"ops\""), "{text}");
}

#[test]
fn bearer_and_api_key_auth() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(opskit(tmp.path()).env("TOK", "tok-abc").args([
        "get",
        &url("/bearer"),
        "--bearer",
        "env:TOK",
        "--check-status",
    ]));
    run_ok(opskit(tmp.path()).args([
        "get",
        &url("/apikey"),
        "--api-key",
        "X-API-Key=k-123",
        "--check-status",
    ]));
    run_ok(opskit(tmp.path()).args([
        "get",
        &url("/apikey"),
        "--api-key",
        "api_key=k-123",
        "--api-key-in",
        "query",
        "--check-status",
    ]));
    opskit(tmp.path())
        .args(["get", &url("/bearer"), "--bearer", "env:UNSET_TOKEN_VAR"])
        .env_remove("UNSET_TOKEN_VAR")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("UNSET_TOKEN_VAR"));
    opskit(tmp.path())
        .args(["get", &url("/bearer"), "--bearer", "file:/no/such/token"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/no/such/token"));
}

fn write_config(tmp: &Path, text: &str) -> std::path::PathBuf {
    let p = tmp.join("config.toml");
    std::fs::write(&p, text.replace("{BASE}", server())).unwrap();
    p
}

#[test]
fn oauth2_client_credentials_and_refresh_token_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"
[profiles.cc]
base_url = "{BASE}"
[profiles.cc.auth]
type = "oauth2_client_credentials"
token_url = "{BASE}/oauth/token"
client_id = "cli"
client_secret = "env:CLIENT_SECRET"

[profiles.rt]
base_url = "{BASE}"
[profiles.rt.auth]
type = "oauth2_refresh_token"
token_url = "{BASE}/oauth/token"
client_id = "cli"
refresh_token = "cmd:echo r-1"
"#,
    );
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .env("OPSKIT_CONFIG", &cfg)
            .env("CLIENT_SECRET", "csecret")
            .args([
                "get",
                "/oauth/protected",
                "--profile",
                "cc",
                "--check-status",
            ]),
    ));
    assert_eq!(v["granted"], "oauth-client_credentials");
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .env("OPSKIT_CONFIG", &cfg)
            .env("OPSKIT_PROFILE", "rt")
            .args(["get", "/oauth/protected", "--check-status"]),
    ));
    assert_eq!(v["granted"], "oauth-refresh_token");
}

// ---------------------------------------------------------------- status and errors

#[test]
fn check_status_maps_4xx_and_5xx_to_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    opskit(tmp.path())
        .args(["get", &url("/status/404"), "--check-status"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("404"))
        .stderr(predicate::str::contains("404"));
    opskit(tmp.path())
        .args([
            "get",
            &url("/status/500"),
            "--check-status",
            "--retries",
            "0",
        ])
        .assert()
        .code(5);
    // without --check-status the response is shown and the exit code is 0
    opskit(tmp.path())
        .args(["get", &url("/status/404")])
        .assert()
        .code(0);
}

#[test]
fn a_ca_bundle_that_is_not_pem_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    opskit(tmp.path())
        .args(["get", &url("/users"), "--ca-bundle", ca.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ca.pem"));
}

#[test]
fn connection_refused_and_timeout_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    opskit(tmp.path())
        .args([
            "get",
            &format!("http://127.0.0.1:{port}/"),
            "--retries",
            "0",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("connect"));
    opskit(tmp.path())
        .args(["get", &url("/slow"), "--timeout", "300ms", "--retries", "0"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("timeout"));
}

#[test]
fn connect_timeout_exits_3() {
    // A listener with a backlog of 1 that never accepts: once its queue is full the kernel drops
    // further SYNs, so opskit's connection hangs in the connect phase.
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (listener, _fillers, addr) = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(
                std::time::Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(s)) => fillers.push(s),
                _ => break,
            }
        }
        (listener, fillers, addr)
    });
    opskit(tmp.path())
        .args([
            "get",
            &format!("http://{addr}/"),
            "--connect-timeout",
            "300ms",
            "--retries",
            "0",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("timeout"));
    drop(listener);
}

#[test]
fn ctrl_c_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let before = state().slow_started.load(Ordering::SeqCst);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["get", &url("/hang"), "--timeout", "60s"])
        .env("OPSKIT_CONFIG", tmp.path().join("none.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while state().slow_started.load(Ordering::SeqCst) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "request never reached the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}

#[test]
fn retries_follow_retry_after_and_post_needs_retry_unsafe() {
    let tmp = tempfile::tempdir().unwrap();
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/flaky"),
        "--retries",
        "3",
        "--check-status",
    ])));
    assert_eq!(v["attempt"], 3);
    // a POST is not retried by default …
    opskit(tmp.path())
        .args([
            "post",
            &url("/flaky-post"),
            "--retries",
            "3",
            "--check-status",
            "a=1",
        ])
        .assert()
        .code(5);
    // … and with --retry-unsafe it is, with one Idempotency-Key on both attempts
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "post",
        &url("/flaky-post"),
        "--retries",
        "3",
        "--retry-unsafe",
        "--check-status",
        "a=1",
    ])));
    assert_eq!(v["attempts_with_key"], 2, "{v}");
}

#[test]
fn rate_limit_makes_the_client_wait_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/link"),
        "--paginate",
        "--rate",
        "1/s",
        "--print",
        "Hb",
        "--output",
        "ndjson",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        TOTAL as usize
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client rate limit"), "{err}");
}

#[test]
fn cache_serves_the_second_get_from_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let a = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/counter"),
        "--cache",
        "10m",
    ])));
    let b = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/counter"),
        "--cache",
        "10m",
    ])));
    assert_eq!(a, b);
    let c = stdout_json(&run_ok(opskit(tmp.path()).args(["get", &url("/counter")])));
    assert_ne!(a, c);
}

// ---------------------------------------------------------------- paging

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn each_paging_style_walks_every_item() {
    let tmp = tempfile::tempdir().unwrap();
    let all: Vec<u64> = (0..TOTAL).collect();
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/link"),
        "--paginate",
    ])));
    assert_eq!(ids(&v), all, "link");
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/pages"),
        "--paginate",
        "--page-style",
        "page",
        "--page-items",
        "/data",
        "--page-size-param",
        "per_page",
        "--page-size",
        "3",
    ])));
    assert_eq!(ids(&v), all, "page");
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/offset"),
        "--paginate",
        "--page-style",
        "offset",
        "--page-items",
        "/items",
        "--page-size-param",
        "limit",
        "--page-size",
        "3",
    ])));
    assert_eq!(ids(&v), all, "offset");
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/cursor"),
        "--paginate",
        "--page-style",
        "cursor",
        "--page-items",
        "/items",
        "--cursor-pointer",
        "/meta/next",
    ])));
    assert_eq!(ids(&v), all, "cursor");
}

#[test]
fn max_items_and_max_pages_stop_early_and_ndjson_streams_items() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/link"),
        "--paginate",
        "--max-items",
        "4",
        "--output",
        "ndjson",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[3]["id"], 3);
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "get",
        &url("/link"),
        "--paginate",
        "--max-pages",
        "2",
    ])));
    assert_eq!(ids(&v), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn profile_paging_settings_and_relative_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"
[profiles.cmdb]
base_url = "{BASE}"
headers = { X-Team = "ops" }
[profiles.cmdb.paginate]
style = "page"
items = "/data"
size_param = "per_page"
size = 2
total_pages = "/total_pages"
"#,
    );
    let out = run_ok(opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
        "get",
        "/pages",
        "--profile",
        "cmdb",
        "--paginate",
        "--output",
        "csv",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,name,net.ip", "{text}");
    assert_eq!(lines.len(), 1 + TOTAL as usize, "{text}");
    assert_eq!(lines[1], "0,host0,10.0.0.0");
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .env("OPSKIT_CONFIG", &cfg)
            .args(["get", "/echo", "--profile", "cmdb"]),
    ));
    assert_eq!(v["headers"]["x-team"], "ops");
}

#[test]
fn the_default_profile_never_sends_its_credentials_to_another_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"
default_profile = "other"
[profiles.other]
base_url = "http://127.0.0.1:9/api"
headers = { X-Team = "ops" }
[profiles.other.auth]
type = "bearer"
token = "tok-abc"
"#,
    );
    // an absolute URL elsewhere: the default profile is not applied
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .env("OPSKIT_CONFIG", &cfg)
            .args(["get", &url("/echo")]),
    ));
    assert!(v["headers"].get("authorization").is_none(), "{v}");
    assert!(v["headers"].get("x-team").is_none(), "{v}");
    // named explicitly, it is
    let v = stdout_json(&run_ok(
        opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
            "get",
            &url("/echo"),
            "--profile",
            "other",
        ]),
    ));
    assert_eq!(v["headers"]["x-team"], "ops");
}

// ---------------------------------------------------------------- output and filters

#[test]
fn csv_and_table_flatten_nested_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--output", "csv"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "id,name,address.city,address.geo.lat,tags\n\
         1,Leanne,Gwenborough,-37.3,\"[\"\"a\"\",\"\"b\"\"]\"\n\
         2,\"Ervin, Jr.\",Wisokyburgh,-43.9,[]\n"
    );
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--output", "table"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("address.geo.lat"), "{text}");
    assert!(text.contains("Ervin, Jr."), "{text}");
    assert!(text.contains("Wisokyburgh"), "{text}");
}

#[test]
fn filters_apply_to_responses_and_items() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "--filter",
        ".[] | {name, city: .address.city}",
        "--output",
        "ndjson",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"name\":\"Leanne\",\"city\":\"Gwenborough\"}\n{\"name\":\"Ervin, Jr.\",\"city\":\"Wisokyburgh\"}\n"
    );
    let out = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/link"),
        "--paginate",
        "--filter",
        "select(.id % 2 == 0) | .name",
        "--output",
        "ndjson",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"host0\"\n\"host2\"\n\"host4\"\n\"host6\"\n"
    );
}

#[test]
fn raw_output_and_non_json_bodies_pass_through() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/text")]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "plain words\n");
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--output", "raw"]));
    // exactly the bytes sent: compact, not re-indented
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("[{\"") && !text.contains("\n  "), "{text}");
}

#[test]
fn big_integers_keep_their_digits() {
    let tmp = tempfile::tempdir().unwrap();
    for output in ["json", "ndjson", "csv", "table"] {
        let out = run_ok(opskit(tmp.path()).args(["get", &url("/bigint"), "--output", output]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("123456789012345678901") && text.contains("-98765432109876543210"),
            "--output {output}: {text}"
        );
        assert!(!text.contains("e+20") && !text.contains("e+19"), "{text}");
    }
}

// ---------------------------------------------------------------- downloads

#[test]
fn download_uses_a_safe_name_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let full = download_body();
    run_ok(opskit(tmp.path()).args(["get", &url("/files/blob"), "--download"]));
    // the server said "../../evil/../report.bin": only the bare name is used, in the cwd
    let saved = tmp.path().join("report.bin");
    assert_eq!(std::fs::read(&saved).unwrap(), full);
    assert!(!tmp.path().join("../evil").exists());
    // a second download never overwrites the first
    run_ok(opskit(tmp.path()).args(["get", &url("/files/blob"), "--download"]));
    assert_eq!(
        std::fs::read(tmp.path().join("report.bin-1")).unwrap(),
        full
    );
    // resuming needs to know which file
    opskit(tmp.path())
        .args(["get", &url("/files/blob"), "--download", "--continue"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("-o FILE"));

    // a partial file is completed with a Range request
    let part = tmp.path().join("partial.bin");
    std::fs::write(&part, &full[..70_000]).unwrap();
    run_ok(opskit(tmp.path()).args([
        "get",
        &url("/files/blob"),
        "--download",
        "-o",
        part.to_str().unwrap(),
        "--continue",
    ]));
    assert_eq!(std::fs::read(&part).unwrap(), full);
}

// ---------------------------------------------------------------- config

#[test]
fn config_path_show_and_check() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"
[profiles.gh]
base_url = "https://api.github.com"
[profiles.gh.auth]
type = "bearer"
token = "ghp_inline_value"

[profiles.cmdb.auth]
type = "bearer"
token = "env:CMDB_TOKEN"
"#,
    );
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["config", "path"])
        .assert()
        .success()
        .stdout(predicate::str::contains(cfg.to_str().unwrap()));
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ghp_inline_value").not())
        .stdout(predicate::str::contains("<redacted>"))
        .stdout(predicate::str::contains("env:CMDB_TOKEN"));
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["config", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 profiles"));
    opskit(tmp.path())
        .env_remove("OPSKIT_CONFIG")
        .env("XDG_CONFIG_HOME", tmp.path().join("xdg"))
        .args(["config", "path"])
        .assert()
        .success()
        .stdout(predicate::str::contains("xdg/opskit/config.toml"));
}

#[test]
fn profile_errors_name_the_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "[profiles.x]\nbase_url = \"{BASE}\"\nretires = 3\n",
    );
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["config", "check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("retires"))
        .stderr(predicate::str::contains(
            "config.toml:3: profiles.x.retires",
        ));
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["get", "/echo", "--profile", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("retires"));
    let cfg = write_config(tmp.path(), "[profiles.x]\nrate = \"lots\"\n");
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["config", "check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad rate"))
        .stderr(predicate::str::contains("config.toml:2: profiles.x.rate"));
    let cfg = write_config(tmp.path(), "[profiles.x]\nbase_url = \"{BASE}\"\n");
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["get", "/echo", "--profile", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`nope`"))
        .stderr(predicate::str::contains("defined profiles: x"));
}

#[test]
fn http_help_lists_items_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    opskit(tmp.path())
        .args(["get", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("field:=json"))
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains("130"));
}

#[test]
fn version_touches_neither_config_nor_network() {
    let tmp = tempfile::tempdir().unwrap();
    // a config file that would fail to parse, and a profile that does not exist
    let cfg = write_config(tmp.path(), "this is not toml");
    opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .env("OPSKIT_PROFILE", "nope")
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------- issue 12 (http side)

/// A running `opskit serve` on a temp SQLite database, killed when dropped.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `opskit serve` (admin password `admin-pw-12`) and waits (up to 60 s) for the line that
/// says where it listens.
fn start_serve(tmp: &Path) -> Serve {
    use std::io::BufRead;
    let db = format!("sqlite://{}", tmp.join("inv.db").display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .args(["--log-format", "json", "--rate-limit", "0"])
        .env_remove("OPSKIT_CONFIG")
        .env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_LOG")
        .env("OPSKIT_ADMIN_PASSWORD", "admin-pw-12")
        .current_dir(tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn opskit serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // keeps reading after the start: a closed pipe would fail the server's next log line
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("opskit serve did not start: {seen:?}");
            }
        };
        if line.contains("listening")
            && let Some(at) = line.find("127.0.0.1:")
        {
            let addr: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return Serve {
                child,
                base: format!("http://{addr}"),
            };
        }
        seen.push(line);
    }
}

#[test]
fn bodies_from_stdin_and_files_carry_a_content_type_opskit_serve_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = start_serve(tmp.path());
    let servers = format!("{}/api/v1/servers", serve.base);
    let host = tmp.path().join("host.json");
    std::fs::write(
        &host,
        r#"{"hostname": "file01", "ip": "10.0.0.1", "env": "prod"}"#,
    )
    .unwrap();
    // `@file`: HTTPie's way of sending a prepared JSON document
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "post",
        &servers,
        &format!("@{}", host.display()),
        "--auth",
        "admin:admin-pw-12",
        "--check-status",
    ])));
    assert_eq!(v["hostname"], "file01", "{v}");
    // piped stdin: the other common way
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .args([
                "post",
                &servers,
                "--auth",
                "admin:admin-pw-12",
                "--check-status",
            ])
            .write_stdin(r#"{"hostname": "stdin01", "ip": "10.0.0.2", "env": "prod"}"#),
    ));
    assert_eq!(v["hostname"], "stdin01", "{v}");
}

#[test]
fn raw_bodies_get_the_content_type_of_their_mode() {
    let tmp = tempfile::tempdir().unwrap();
    // JSON mode (the default), as xh and HTTPie: application/json
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .args(["post", &url("/echo")])
            .write_stdin(r#"{"from": "stdin"}"#),
    ));
    assert_eq!(v["headers"]["content-type"], "application/json", "{v}");
    assert_eq!(v["json"], json!({"from": "stdin"}));
    // a file whose extension names its type keeps that type (HTTPie)
    let xml = tmp.path().join("body.xml");
    std::fs::write(&xml, "<a/>").unwrap();
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "put",
        &url("/echo"),
        &format!("@{}", xml.display()),
    ])));
    assert_eq!(v["headers"]["content-type"], "application/xml", "{v}");
    // --form: a raw body is an already encoded form (xh)
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .args(["post", &url("/echo"), "--form"])
            .write_stdin("a=1&b=two"),
    ));
    assert_eq!(
        v["headers"]["content-type"], "application/x-www-form-urlencoded",
        "{v}"
    );
    assert_eq!(v["body"], "a=1&b=two");
    // the user's own Content-Type wins
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .args(["post", &url("/echo"), "Content-Type:text/csv"])
            .write_stdin("a,b\n1,2\n"),
    ));
    assert_eq!(v["headers"]["content-type"], "text/csv", "{v}");
    // --offline and --curl show it too
    let json_file = tmp.path().join("doc.json");
    std::fs::write(&json_file, r#"{"a": 1}"#).unwrap();
    let out = run_ok(opskit(tmp.path()).args([
        "post",
        "http://127.0.0.1:9/x",
        &format!("@{}", json_file.display()),
        "--curl",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("'Content-Type: application/json'"), "{text}");
    // a raw body cannot be multipart
    opskit(tmp.path())
        .args([
            "post",
            &url("/echo"),
            "--multipart",
            &format!("@{}", json_file.display()),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("multipart"));
}

#[test]
fn config_show_curl_and_offline_never_print_header_or_query_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"
[profiles.api]
base_url = "{BASE}"
headers = { Authorization = "Bearer sekrit-auth", X-Api-Key = "sekrit-key", X-Tenant = "sekrit-tenant", X-Session-Id = "sekrit-session", X-Team = "ops" }
secret_headers = ["X-Tenant"]
query = { api_key = "sekrit-query", status = "active" }
"#,
    );
    let out = run_ok(
        opskit(tmp.path())
            .env("OPSKIT_CONFIG", &cfg)
            .args(["config", "show"]),
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!shown.contains("sekrit"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("Bearer <redacted>"), "{shown}");
    // what is not a secret is still shown, so the command stays useful
    assert!(
        shown.contains("ops") && shown.contains("active") && shown.contains("X-Tenant"),
        "{shown}"
    );

    // --curl: profile headers, profile query and an Authorization item
    let out = run_ok(opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
        "get",
        "/echo",
        "--profile",
        "api",
        "--curl",
        "Authorization:Bearer sekrit-item",
        "X-Other-Token:sekrit-token",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("sekrit"), "{text}");
    assert!(text.contains("Authorization: Bearer <redacted>"), "{text}");
    assert!(text.contains("X-Team: ops"), "{text}");
    assert!(text.contains("status=active"), "{text}");
    // and says how to get a runnable command
    assert!(err.contains("<redacted>") && err.contains("env:"), "{err}");

    // --offline and -v redact the same headers
    let out = run_ok(opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
        "get",
        "/echo",
        "--profile",
        "api",
        "--offline",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("sekrit"), "{text}");
    let out = run_ok(opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
        "get",
        "/text",
        "--profile",
        "api",
        "-v",
    ]));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("sekrit"), "{all}");
    assert!(
        all.contains("x-team: ops") || all.contains("X-Team: ops"),
        "{all}"
    );
}

#[test]
fn a_retried_status_still_prints_the_last_response() {
    let tmp = tempfile::tempdir().unwrap();
    // without --check-status: a response is a response, as for 404 and 501
    for code in [500, 502, 503, 408, 429, 404, 501] {
        let out = opskit(tmp.path())
            .args(["get", &url(&format!("/status/{code}")), "--retries", "1"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout_json(&out), json!({"status": code}), "{code}");
    }
    // with --check-status: 5 for a 5xx and 4 for a 4xx, the body still printed
    for (code, exit) in [(503, 5), (500, 5), (429, 4), (408, 4)] {
        let out = opskit(tmp.path())
            .args([
                "get",
                &url(&format!("/status/{code}")),
                "--retries",
                "1",
                "--check-status",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit), "{code}: {err}");
        assert_eq!(stdout_json(&out), json!({"status": code}), "{code}");
        assert!(err.contains(&code.to_string()), "{err}");
        assert!(err.contains("2 attempts"), "{err}");
    }
}

#[test]
fn key_order_is_the_users_and_the_servers() {
    let tmp = tempfile::tempdir().unwrap();
    // request bodies keep the order of the items
    let v = stdout_json(&run_ok(opskit(tmp.path()).args([
        "post",
        &url("/echo"),
        "zeta=1",
        "alpha=2",
        "mid:=3",
    ])));
    assert_eq!(v["body"], r#"{"zeta":"1","alpha":"2","mid":3}"#, "{v}");
    // --filter object keys give the CSV columns in the order written
    let out = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "--filter",
        ".[] | {name, id, city: .address.city}",
        "--output",
        "csv",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "name,id,city\nLeanne,1,Gwenborough\n\"Ervin, Jr.\",2,Wisokyburgh\n"
    );
    // the server's order, in JSON and in CSV
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/ordered"), "--output", "ndjson"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"zulu\":1,\"alpha\":{\"yankee\":\"y\",\"bravo\":\"b\"},\"mike\":true}\n"
    );
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/ordered"), "--output", "csv"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "zulu,alpha.yankee,alpha.bravo,mike\n1,y,b,true\n"
    );
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/ordered")]));
    let text = String::from_utf8_lossy(&out.stdout);
    let (z, a, m) = (
        text.find("zulu").unwrap(),
        text.find("alpha").unwrap(),
        text.find("mike").unwrap(),
    );
    assert!(z < a && a < m, "{text}");
}

#[test]
fn out_file_saves_the_body_and_never_overwrites_without_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    // -o without --download: the body goes to the file, stdout stays empty
    let out = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "-o", "users.json"]));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("users.json")).unwrap()).unwrap();
    assert_eq!(saved[1]["name"], "Ervin, Jr.");
    // --output applies to what is saved
    run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--output", "csv", "-o", "users.csv"]));
    let csv = std::fs::read_to_string(tmp.path().join("users.csv")).unwrap();
    assert!(
        csv.lines().next().unwrap().contains("address.city"),
        "{csv}"
    );
    // an existing file is kept: exit 1, and the hint names the flag
    std::fs::write(tmp.path().join("keep.txt"), "precious").unwrap();
    opskit(tmp.path())
        .args(["get", &url("/users"), "-o", "keep.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("keep.txt"))
        .stderr(predicate::str::contains("--overwrite"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "precious"
    );
    // the same for --download -o
    opskit(tmp.path())
        .args(["get", &url("/files/blob"), "--download", "-o", "keep.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--overwrite"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "precious"
    );
    // with --overwrite it is replaced
    run_ok(opskit(tmp.path()).args([
        "get",
        &url("/files/blob"),
        "--download",
        "-o",
        "keep.txt",
        "--overwrite",
    ]));
    assert_eq!(
        std::fs::read(tmp.path().join("keep.txt")).unwrap(),
        download_body()
    );
    run_ok(opskit(tmp.path()).args(["get", &url("/text"), "-o", "keep.txt", "--overwrite"]));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "plain words\n"
    );
    // a failed request leaves no file behind
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    opskit(tmp.path())
        .args([
            "get",
            &format!("http://127.0.0.1:{port}/"),
            "--retries",
            "0",
            "-o",
            "none.json",
        ])
        .assert()
        .code(3);
    assert!(!tmp.path().join("none.json").exists());
}

/// A self-signed certificate for `names`, marked as a CA as `openssl req -x509` makes it:
/// (certificate PEM, key PEM).
pub(crate) fn self_signed(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// An HTTPS server on 127.0.0.1:0 presenting `cert_pem`; every path answers `{"tls": true}`.
pub(crate) fn https_server(cert_pem: &str, key_pem: &str) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(|| async { axum::Json(json!({"tls": true})) });
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
    });
    port
}

#[test]
fn a_self_signed_certificate_in_ca_bundle_is_trusted_as_curl_cacert_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(&["localhost", "127.0.0.1"]);
    let port = https_server(&cert, &key);
    let bundle = tmp.path().join("self-signed.pem");
    std::fs::write(&bundle, &cert).unwrap();
    // not trusted without it: a TLS failure (exit 3) with a TLS hint
    let out = opskit(tmp.path())
        .args([
            "get",
            &format!("https://127.0.0.1:{port}/"),
            "--retries",
            "0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("TLS"), "{err}");
    assert!(err.contains("--ca-bundle"), "{err}");
    assert!(!err.contains("check the host and port"), "{err}");
    // with it, by address and by name
    for host in ["127.0.0.1", "localhost"] {
        let v = stdout_json(&run_ok(opskit(tmp.path()).args([
            "get",
            &format!("https://{host}:{port}/"),
            "--ca-bundle",
            bundle.to_str().unwrap(),
            "--check-status",
        ])));
        assert_eq!(v, json!({"tls": true}), "{host}");
    }
    // the host name is still checked: a certificate for another name is refused
    let (other, other_key) = self_signed(&["other.example"]);
    let other_port = https_server(&other, &other_key);
    let other_bundle = tmp.path().join("other.pem");
    std::fs::write(&other_bundle, &other).unwrap();
    let out = opskit(tmp.path())
        .args([
            "get",
            &format!("https://127.0.0.1:{other_port}/"),
            "--ca-bundle",
            other_bundle.to_str().unwrap(),
            "--retries",
            "0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("not valid for"), "{err}");
}

#[test]
fn profile_secret_headers_stay_with_their_origin_on_a_redirect() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        r#"
[profiles.api]
base_url = "{BASE}"
headers = { X-Tenant = "sekrit-tenant", X-Session-Id = "sekrit-session", X-Team = "ops" }
secret_headers = ["X-Tenant"]
"#,
    );
    // same origin: everything is sent
    let v = stdout_json(&run_ok(
        opskit(tmp.path())
            .env("OPSKIT_CONFIG", &cfg)
            .args(["get", "/echo", "--profile", "api"]),
    ));
    assert_eq!(v["headers"]["x-tenant"], "sekrit-tenant", "{v}");
    // redirected to another origin (localhost instead of 127.0.0.1): the secrets stay behind
    let port = server().rsplit(':').next().unwrap().to_owned();
    let to = format!("http://localhost:{port}/echo");
    let v = stdout_json(&run_ok(
        opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
            "get",
            "/goto",
            &format!("to=={to}"),
            "--profile",
            "api",
        ]),
    ));
    assert!(v["headers"].get("x-tenant").is_none(), "{v}");
    assert!(v["headers"].get("x-session-id").is_none(), "{v}");
    assert_eq!(v["headers"]["x-team"], "ops", "{v}");
}

/// Issue 12 (defect 19): a `Retry-After` longer than opskit will wait is given up on with the
/// reason (the server's wait, the limit, the flag that raises it), and counts are English.
#[test]
fn a_retry_after_over_the_limit_is_given_up_on_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = opskit(tmp.path())
        .args(["get", &url("/retry-after/3600"), "--check-status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    // the 503 is still the answer: printed
    assert_eq!(stdout_json(&out)["busy"], true);
    assert!(err.contains("3600 s"), "{err}");
    assert!(err.contains("Retry-After"), "{err}");
    assert!(err.contains("--retry-max-wait"), "{err}");
    assert!(!err.contains("1 attempts"), "{err}");
    // without --check-status: exit 0, and the reason still on stderr
    let out = opskit(tmp.path())
        .args(["get", &url("/retry-after/3600")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("3600 s") && err.contains("--retry-max-wait"),
        "{err}"
    );
    // a limit lower than the server's wait is said the same way
    let out = opskit(tmp.path())
        .args(["get", &url("/retry-after/1"), "--retry-max-wait", "500ms"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 s") && err.contains("500ms"), "{err}");
}

/// Issue 12 (defect 19): an engine error after retries counts its attempts in English.
#[test]
fn gave_up_after_one_attempt_is_singular() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // the first backoff (125-250 ms) does not fit in 100 ms: given up after the first attempt
    let out = opskit(tmp.path())
        .args([
            "get",
            &format!("http://{closed}/x"),
            "--retry-max-wait",
            "100ms",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("gave up after 1 attempt: "), "{err}");
}

/// Issue 12 (defect 19): `opskit config check` reports every error of the file, each with
/// file:line and the key, then exits 2.
#[test]
fn config_check_reports_every_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "[profiles.a]\nbase_url = \"http://h\"\nretires = 3\n\n[profiles.b]\ntimeout = \"soon\"\n\n[profiles.c]\nbase_url = \"ftp://h\"\nrate = \"lots\"\n",
    );
    let out = opskit(tmp.path())
        .env("OPSKIT_CONFIG", &cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let shown = cfg.display().to_string();
    for (line, key) in [
        (3, "profiles.a.retires"),
        (6, "profiles.b.timeout"),
        (9, "profiles.c.base_url"),
        (10, "profiles.c.rate"),
    ] {
        assert!(
            err.contains(&format!("{shown}:{line}: {key}")),
            "{line} {key}: {err}"
        );
    }
    assert!(err.contains("4 errors"), "{err}");
}

/// Issue 12 (one output rendering): `opskit http` writes through the one stdout and renderer,
/// like net and ssh: every format into a closed pipe ends quietly with 0, onto a full disk it is
/// "cannot write to stdout" with exit 1.
#[test]
fn http_output_into_a_closed_pipe_or_a_full_disk_in_every_format() {
    use crate::basics::{
        assert_quiet_success, assert_stdout_failure, bin, with_closed_stdout, with_full_stdout,
    };
    let tmp = tempfile::tempdir().unwrap();
    for format in ["json", "ndjson", "csv", "table", "raw"] {
        let cmd = || {
            let mut c = bin();
            c.args(["get", &url("/users"), "--output", format])
                .env("OPSKIT_CONFIG", tmp.path().join("none.toml"))
                .env("NO_COLOR", "1");
            c
        };
        assert_quiet_success(&with_closed_stdout(&mut cmd()));
        assert_stdout_failure(&with_full_stdout(&mut cmd()));
    }
}
