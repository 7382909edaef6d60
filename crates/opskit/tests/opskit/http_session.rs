//! `opskit http --session NAME` and the `login` auth kind (issue 17): against a real `opskit
//! serve` with one-second access tokens and rotating refresh tokens, and against a FastAPI-style
//! OAuth2 password-form login served by a small fixture.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

const ADMIN_PW: &str = "admin-pw-17-session";

fn opskit(tmp: &Path) -> Command {
    let mut c = Command::cargo_bin("opskit").expect("binary built");
    c.env_remove("OPSKIT_PROFILE")
        .env("OPSKIT_CONFIG", tmp.join("config.toml"))
        .env("XDG_STATE_HOME", tmp.join("state"))
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("NO_COLOR", "1")
        .current_dir(tmp)
        .timeout(Duration::from_secs(60));
    c
}

/// A running `opskit serve` whose access tokens live one second; killed when dropped.
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

fn start_serve(tmp: &Path) -> Serve {
    use std::io::BufRead;
    let db = format!("sqlite://{}", tmp.join("inv.db").display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .args(["--log-format", "json", "--rate-limit", "0"])
        .args(["--access-token-ttl", "1s"])
        .env_remove("OPSKIT_CONFIG")
        .env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_LOG")
        .env("OPSKIT_ADMIN_PASSWORD", ADMIN_PW)
        .current_dir(tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn opskit serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("opskit serve did not start: {seen:?}");
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "opskit serve listening"
        {
            let addr = v["fields"]["addr"].as_str().unwrap().to_owned();
            return Serve {
                child,
                base: format!("http://{addr}"),
            };
        }
        seen.push(line);
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs one request of the test itself.
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// How many POSTs to `route` serve answered with `status`, from its /metrics.
fn served(serve: &Serve, route: &str, status: u16) -> u64 {
    let text = block(async {
        client()
            .get(format!("{}/metrics", serve.base))
            .basic_auth("admin", Some(ADMIN_PW))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let want = format!(
        "opskit_http_requests_total{{method=\"POST\",route=\"{route}\",status=\"{status}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn session_file(tmp: &Path, profile: &str, name: &str) -> PathBuf {
    tmp.join("state/opskit/sessions")
        .join(format!("profile-{profile}"))
        .join(format!("{name}.json"))
}

fn read_session(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn token(v: &Value, which: &str) -> String {
    v["login"][which].as_str().unwrap().to_owned()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_session_survives_an_access_token_expiry_against_opskit_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = start_serve(tmp.path());
    std::fs::write(
        tmp.path().join("config.toml"),
        format!(
            r#"[profiles.inv]
base_url = "{b}"

[profiles.inv.auth]
type = "login"
login_url = "{b}/auth/login"
username = "admin"
password = "env:INV_PASSWORD"
refresh_url = "{b}/auth/refresh"
"#,
            b = serve.base
        ),
    )
    .unwrap();
    let me = |extra: &[&str]| {
        let out = opskit(tmp.path())
            .args(["get", "/auth/me", "--profile", "inv", "--session", "ops"])
            .args(extra)
            .env("INV_PASSWORD", ADMIN_PW)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    };

    // run 1: logs in, the tokens go to the session file, owner-only
    let out = me(&[]);
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["name"], "admin", "{}", text(&out));
    let file = session_file(tmp.path(), "inv", "ops");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "session file mode {mode:o}");
    let dir_mode = std::fs::metadata(file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "session dir mode {dir_mode:o}");
    let first = read_session(&file);
    let (access1, refresh1) = (
        token(&first, "access_token"),
        token(&first, "refresh_token"),
    );
    assert_eq!(served(&serve, "/auth/login", 200), 1);

    // wait (bounded) until serve itself refuses the first access token
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = block(async {
            client()
                .get(format!("{}/auth/me", serve.base))
                .bearer_auth(&access1)
                .send()
                .await
                .unwrap()
                .status()
        });
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "the access token never expired");
        std::thread::sleep(Duration::from_millis(200));
    }

    // run 2: refreshes (no second login), keeps the rotated refresh token, -v shows no secret
    let out = me(&["-v"]);
    let all = text(&out);
    assert!(all.contains("\"name\": \"admin\""), "{all}");
    assert!(all.contains("refreshed the access token"), "{all}");
    assert!(!all.contains("logged in"), "{all}");
    assert_eq!(served(&serve, "/auth/login", 200), 1, "logged in again");
    assert_eq!(served(&serve, "/auth/refresh", 200), 1);
    let second = read_session(&file);
    let (access2, refresh2) = (
        token(&second, "access_token"),
        token(&second, "refresh_token"),
    );
    assert_ne!(refresh2, refresh1, "the rotated refresh token is saved");
    assert_ne!(access2, access1);
    for secret in [ADMIN_PW, &access1, &refresh1, &access2, &refresh2] {
        assert!(!all.contains(secret), "a secret in -v output: {all}");
    }
    assert!(all.contains("authorization: <redacted>"), "{all}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "session file mode after the rewrite {mode:o}");

    // an access token the API refuses (401) although its expiry is ahead: refreshed, replayed
    let mut tampered = second.clone();
    tampered["login"]["access_token"] = json!("not-a-token");
    tampered["login"]["expires_at"] = json!(4_000_000_000u64);
    std::fs::write(&file, tampered.to_string()).unwrap();
    me(&[]);
    assert_eq!(served(&serve, "/auth/refresh", 200), 2);
    assert_eq!(served(&serve, "/auth/login", 200), 1);

    // a refresh token the API refuses: one new login, and the request still succeeds
    let mut tampered = read_session(&file);
    tampered["login"]["access_token"] = json!("not-a-token");
    tampered["login"]["refresh_token"] = json!("not-a-refresh-token");
    std::fs::write(&file, tampered.to_string()).unwrap();
    let out = me(&["-v"]);
    assert!(text(&out).contains("logged in at"), "{}", text(&out));
    assert_eq!(served(&serve, "/auth/refresh", 401), 1);
    assert_eq!(served(&serve, "/auth/login", 200), 2);

    // the saved refresh token is the live one
    let last = token(&read_session(&file), "refresh_token");
    let status = block(async {
        client()
            .post(format!("{}/auth/refresh", serve.base))
            .json(&json!({ "refresh_token": last }))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_wrong_password_against_opskit_serve_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let serve = start_serve(tmp.path());
    std::fs::write(
        tmp.path().join("config.toml"),
        format!(
            "[profiles.inv]\nbase_url = \"{b}\"\n[profiles.inv.auth]\ntype = \"login\"\n\
             login_url = \"{b}/auth/login\"\nusername = \"admin\"\npassword = \"env:INV_PASSWORD\"\n\
             refresh_url = \"{b}/auth/refresh\"\n",
            b = serve.base
        ),
    )
    .unwrap();
    let out = opskit(tmp.path())
        .args([
            "get",
            "/api/v1/servers",
            "--profile",
            "inv",
            "--session",
            "s",
        ])
        .env("INV_PASSWORD", "Wrong-guess-417")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("login at") && err.contains("401"), "{err}");
    assert!(!err.contains("Wrong-guess-417"), "{err}");
    assert!(out.stdout.is_empty());
    // no tokens were saved
    let file = session_file(tmp.path(), "inv", "s");
    assert!(
        !file.exists() || read_session(&file).get("login").is_none(),
        "{:?}",
        std::fs::read_to_string(&file)
    );
}

// ------------------------------------------------- FastAPI-style fixture (OAuth2 password form)

#[derive(Default)]
struct Fixture {
    logins: AtomicU32,
    /// Bumped to invalidate every token issued before.
    epoch: AtomicU32,
    /// OAuth2 refresh-token grant: the one refresh token that works is `rt-N` (rotated).
    refresh_n: AtomicU32,
    refreshes: AtomicU32,
}

/// Serves FastAPI's OAuth2 password flow: `POST /token` takes a form (username, password) and
/// answers `{"access_token", "token_type": "bearer"}` (no expiry, no refresh token);
/// `GET /users/me` wants the bearer token; `/cookie/*` set and echo a cookie.
fn fastapi_fixture() -> (String, Arc<Fixture>) {
    use axum::routing::{get, post};
    let state = Arc::new(Fixture::default());
    state.refresh_n.store(1, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let s1 = st.clone();
            let s2 = st.clone();
            let s3 = st.clone();
            let s4 = st.clone();
            let app = axum::Router::new()
                .route(
                    "/token",
                    post(move |headers: HeaderMap, body: String| {
                        let s = s1.clone();
                        async move {
                            let ct = headers
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            if ct != "application/x-www-form-urlencoded" {
                                return (
                                    StatusCode::UNPROCESSABLE_ENTITY,
                                    axum::Json(json!({"detail": [{"msg": "Field required", "input": body}]})),
                                )
                                    .into_response();
                            }
                            let form: Vec<(String, String)> =
                                url::form_urlencoded::parse(body.as_bytes())
                                    .into_owned()
                                    .collect();
                            let get = |k: &str| {
                                form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
                            };
                            if get("username") != Some("alice")
                                || get("password") != Some("wonderland-pw")
                                || get("grant_type") != Some("password")
                            {
                                return (
                                    StatusCode::UNAUTHORIZED,
                                    [("www-authenticate", "Bearer")],
                                    axum::Json(json!({"detail": "Incorrect username or password"})),
                                )
                                    .into_response();
                            }
                            let n = s.logins.fetch_add(1, Ordering::SeqCst) + 1;
                            let epoch = s.epoch.load(Ordering::SeqCst);
                            axum::Json(json!({
                                "access_token": format!("fastapi-token-{epoch}-{n}"),
                                "token_type": "bearer"
                            }))
                            .into_response()
                        }
                    }),
                )
                .route(
                    "/users/me",
                    get(move |headers: HeaderMap| {
                        let s = s2.clone();
                        async move {
                            let auth = headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            let prefix =
                                format!("Bearer fastapi-token-{}-", s.epoch.load(Ordering::SeqCst));
                            if !auth.starts_with(&prefix) {
                                return (
                                    StatusCode::UNAUTHORIZED,
                                    axum::Json(json!({"detail": "Not authenticated"})),
                                )
                                    .into_response();
                            }
                            axum::Json(json!({"username": "alice"})).into_response()
                        }
                    }),
                )
                .route(
                    "/oauth/token",
                    post(move |body: String| {
                        let s = s3.clone();
                        async move {
                            let form: Vec<(String, String)> =
                                url::form_urlencoded::parse(body.as_bytes())
                                    .into_owned()
                                    .collect();
                            let n = s.refresh_n.load(Ordering::SeqCst);
                            let want = [
                                ("grant_type".to_owned(), "refresh_token".to_owned()),
                                ("refresh_token".to_owned(), format!("rt-{n}")),
                            ];
                            if form != want {
                                return (
                                    StatusCode::BAD_REQUEST,
                                    axum::Json(json!({"error": "invalid_grant"})),
                                )
                                    .into_response();
                            }
                            s.refresh_n.store(n + 1, Ordering::SeqCst);
                            s.refreshes.fetch_add(1, Ordering::SeqCst);
                            axum::Json(json!({
                                "access_token": format!("at-{n}"),
                                "refresh_token": format!("rt-{}", n + 1),
                                "expires_in": 1
                            }))
                            .into_response()
                        }
                    }),
                )
                .route(
                    "/oauth/me",
                    get(move |headers: HeaderMap| {
                        let s = s4.clone();
                        async move {
                            let n = s.refresh_n.load(Ordering::SeqCst);
                            let want = format!("Bearer at-{}", n - 1);
                            if headers.get("authorization").and_then(|v| v.to_str().ok())
                                != Some(want.as_str())
                            {
                                return StatusCode::UNAUTHORIZED.into_response();
                            }
                            axum::Json(json!({"ok": true})).into_response()
                        }
                    }),
                )
                .route(
                    "/refuses-every-token",
                    get(|| async {
                        (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"detail": "Not authenticated"})),
                        )
                    }),
                )
                .route(
                    "/cookie/set",
                    get(|| async {
                        (
                            [("set-cookie", "sid=cookie-value-17; Path=/; HttpOnly")],
                            axum::Json(json!({"set": true})),
                        )
                    }),
                )
                .route(
                    "/cookie/echo",
                    get(|headers: HeaderMap| async move {
                        let c = headers
                            .get("cookie")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        axum::Json(json!({ "cookie": c }))
                    }),
                );
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}"), state)
}

fn fastapi_profile(tmp: &Path, base: &str) {
    std::fs::write(
        tmp.join("config.toml"),
        format!(
            r#"[profiles.api]
base_url = "{base}"

[profiles.api.auth]
type = "login"
login_url = "{base}/token"
body = "form"
login_fields = {{ grant_type = "password" }}
username = "alice"
password = "file:{pw}"
"#,
            pw = tmp.join("pw.txt").display()
        ),
    )
    .unwrap();
}

#[test]
fn a_fastapi_password_form_login_is_kept_in_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, fx) = fastapi_fixture();
    fastapi_profile(tmp.path(), &base);
    std::fs::write(tmp.path().join("pw.txt"), "wonderland-pw\n").unwrap();
    let me = || {
        let out = opskit(tmp.path())
            .args(["get", "/users/me", "--profile", "api", "--session", "w"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["username"], "alice");
    };
    me();
    me();
    assert_eq!(
        fx.logins.load(Ordering::SeqCst),
        1,
        "the second run reuses the token"
    );
    // the tokens belong to alice: another username logs in itself (and bob is refused)
    let cfg = tmp.path().join("config.toml");
    let alice = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, alice.replace("\"alice\"", "\"bob\"")).unwrap();
    let out = opskit(tmp.path())
        .args(["get", "/users/me", "--profile", "api", "--session", "w"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::write(&cfg, alice).unwrap();
    me();
    assert_eq!(
        fx.logins.load(Ordering::SeqCst),
        1,
        "alice's token is still saved"
    );
    // the API drops every token (no expiry was given, no refresh URL): 401, one new login
    fx.epoch.fetch_add(1, Ordering::SeqCst);
    me();
    assert_eq!(fx.logins.load(Ordering::SeqCst), 2);
    // without --session the token lives for the run only
    let out = opskit(tmp.path())
        .args(["get", "/users/me", "--profile", "api"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fx.logins.load(Ordering::SeqCst), 3);

    // a wrong password: the server's words, exit 1, the password never shown
    std::fs::write(tmp.path().join("pw.txt"), "not-the-pw-99\n").unwrap();
    let out = opskit(tmp.path())
        .args([
            "get",
            "/users/me",
            "--profile",
            "api",
            "--session",
            "w",
            "--session-reset",
            "-v",
        ])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("401") && all.contains("Incorrect username or password"),
        "{all}"
    );
    assert!(!all.contains("not-the-pw-99"), "{all}");
}

/// An API that answers 401 to every token: one login, then a clear error, never a loop of
/// logins.
#[test]
fn a_request_logs_in_at_most_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, fx) = fastapi_fixture();
    fastapi_profile(tmp.path(), &base);
    std::fs::write(tmp.path().join("pw.txt"), "wonderland-pw\n").unwrap();
    let out = opskit(tmp.path())
        .args([
            "get",
            "/refuses-every-token",
            "--profile",
            "api",
            "--session",
            "l",
        ])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("just issued"), "{all}");
    assert_eq!(fx.logins.load(Ordering::SeqCst), 1, "{all}");
    // with a saved token: the 401 brings one new login (no refresh URL) and one replay, whose
    // 401 is the answer (exit 4 under --check-status)
    let out = opskit(tmp.path())
        .args([
            "get",
            "/refuses-every-token",
            "--profile",
            "api",
            "--session",
            "l",
            "--check-status",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("Not authenticated"), "{}", text(&out));
    assert_eq!(fx.logins.load(Ordering::SeqCst), 2);
}

/// `type = "oauth2_refresh_token"` against a server that rotates refresh tokens: the session
/// keeps the rotated one, so the next run can refresh again (the configured one is spent).
#[test]
fn a_session_keeps_a_rotated_oauth2_refresh_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, fx) = fastapi_fixture();
    std::fs::write(
        tmp.path().join("config.toml"),
        format!(
            "[profiles.o]\nbase_url = \"{base}\"\n[profiles.o.auth]\ntype = \"oauth2_refresh_token\"\n\
             token_url = \"{base}/oauth/token\"\nrefresh_token = \"env:O_REFRESH\"\n"
        ),
    )
    .unwrap();
    let run = |session: bool| {
        let mut c = opskit(tmp.path());
        c.args(["get", "/oauth/me", "--profile", "o", "--check-status"])
            .env("O_REFRESH", "rt-1");
        if session {
            c.args(["--session", "o"]);
        }
        c.output().unwrap()
    };
    for _ in 0..2 {
        let out = run(true);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(fx.refreshes.load(Ordering::SeqCst), 2);
    let saved = read_session(&session_file(tmp.path(), "o", "o"));
    assert_eq!(saved["login"]["refresh_token"], "rt-3");
    // without the session the configured token is spent
    let out = run(false);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("invalid_grant"), "{}", text(&out));
}

#[test]
fn cookies_are_kept_between_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _fx) = fastapi_fixture();
    let file = tmp.path().join("jar").join("c.json");
    let run = |path: &str| {
        let out = opskit(tmp.path())
            .args([
                "get",
                &format!("{base}{path}"),
                "--session",
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    run("/cookie/set");
    assert_eq!(run("/cookie/echo")["cookie"], "sid=cookie-value-17");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // without the session, no cookie
    let out = opskit(tmp.path())
        .args(["get", &format!("{base}/cookie/echo")])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cookie"], "");
}

#[test]
fn a_corrupt_session_file_says_how_to_start_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, _fx) = fastapi_fixture();
    let file = tmp.path().join("broken.json");
    std::fs::write(&file, "{ this is not json").unwrap();
    let url = format!("{base}/cookie/echo");
    let out = opskit(tmp.path())
        .args(["get", &url, "--session", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.json"), "{err}");
    assert!(
        err.contains("--session-reset") && err.contains("rm "),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // --session-reset starts afresh and replaces the file
    let out = opskit(tmp.path())
        .args([
            "get",
            &url,
            "--session",
            file.to_str().unwrap(),
            "--session-reset",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["opskit_session"], 1);
    // a bad name is a usage error
    let out = opskit(tmp.path())
        .args(["get", &url, "--session", "bad name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
