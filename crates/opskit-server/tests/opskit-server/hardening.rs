//! Issue 11: every password check throttled before hashing, metric labels from a closed set,
//! sessions revoked when they should be, strict If-Match and JWT claims, control characters
//! refused, honest 405 and 429 answers.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use opskit_server::store::Store;

use crate::both;
use crate::support::{ADMIN_PASSWORD, Options, TestApp, problem};

pub fn throttled(n: u32) -> Options {
    Options {
        login_rate_limit: Some(n),
        ..Default::default()
    }
}

async fn basic(app: &TestApp, user: &str, password: &str) -> reqwest::Response {
    app.req(Method::GET, "/auth/me")
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

async fn metrics(app: &TestApp) -> String {
    app.admin_req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a metric line that starts with `prefix` (0 when absent).
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

both!(
    hardening::basic_guesses_share_the_login_throttle,
    crate::hardening::throttled(3)
);
/// Finding 1: HTTP Basic used to skip the login limit. Now wrong Basic passwords count against the
/// same throttle as /auth/login, and once it is spent the right password gets exactly the answer
/// a wrong one gets (no oracle).
pub async fn basic_guesses_share_the_login_throttle(app: TestApp) {
    for _ in 0..3 {
        problem(basic(&app, "admin", "guess-wrong").await, 401).await;
    }
    let wrong = basic(&app, "admin", "guess-wrong").await;
    let right = basic(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(wrong.status(), 429);
    assert_eq!(right.status(), 429, "the right password during a lockout");
    assert!(right.headers().contains_key("retry-after"));
    let (w, r) = (
        problem(wrong, 429).await["detail"].clone(),
        problem(right, 429).await["detail"].clone(),
    );
    assert_eq!(w, r);
    // the login endpoint is behind the same throttle
    let r = app
        .req(Method::POST, "/auth/login")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // a bearer token issued before keeps working
    let r = app.admin_req(Method::GET, "/auth/me").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

both!(
    hardening::basic_guesses_over_the_general_limit_are_not_an_oracle,
    crate::support::Options {
        rate_limit: Some(3),
        login_rate_limit: Some(2),
        ..Default::default()
    }
);
/// Finding 1: with the general limit spent, a wrong password got 429 while the right one got 200.
pub async fn basic_guesses_over_the_general_limit_are_not_an_oracle(app: TestApp) {
    for _ in 0..6 {
        let r = basic(&app, "admin", "guess-wrong").await;
        assert!(matches!(r.status().as_u16(), 401 | 429), "{}", r.status());
    }
    let wrong = basic(&app, "admin", "guess-wrong").await;
    let right = basic(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(wrong.status(), right.status());
    assert_eq!(right.status(), 429);
}

both!(
    hardening::the_throttle_is_per_username_too,
    crate::hardening::throttled(3)
);
/// Guesses against one username from several addresses are throttled; another user is not.
pub async fn the_throttle_is_per_username_too(app: TestApp) {
    let db = app.db().await;
    opskit_server::users::add_user(
        &db,
        "bob",
        secrecy::SecretString::from("bob-password-1"),
        opskit_server::model::Role::Viewer,
    )
    .await
    .unwrap();
    for i in 0..4u8 {
        // each guess from its own loopback address
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 10 + i]))
            .build()
            .unwrap();
        let r = client
            .get(app.url("/auth/me"))
            .basic_auth("admin", Some("guess-wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), if i < 3 { 401 } else { 429 }, "guess {i}");
    }
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 20]))
        .build()
        .unwrap();
    let r = client
        .get(app.url("/auth/me"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "admin is locked from any address");
    let r = client
        .get(app.url("/auth/me"))
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another user is not");
}

both!(
    hardening::api_key_guesses_are_throttled,
    crate::hardening::throttled(3)
);
pub async fn api_key_guesses_are_throttled(app: TestApp) {
    let db = app.db().await;
    let (key, _) =
        opskit_server::users::create_api_key(&db, "ci", opskit_server::model::Role::Viewer)
            .await
            .unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&key).to_owned();
    for _ in 0..3 {
        let r = app
            .req(Method::GET, "/auth/me")
            .header("x-api-key", "opk_guessed-key")
            .send()
            .await
            .unwrap();
        problem(r, 401).await;
    }
    let r = app
        .req(Method::GET, "/auth/me")
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "a right key during the lockout");
}

both!(
    hardening::a_throttled_guess_is_not_hashed,
    crate::hardening::throttled(2)
);
/// Finding 2: the hash ran before any limit. Failures and throttled attempts are counted in
/// /metrics, and a throttled attempt never reaches the password hash.
pub async fn a_throttled_guess_is_not_hashed(app: TestApp) {
    for _ in 0..2 {
        problem(basic(&app, "admin", "guess-wrong").await, 401).await;
    }
    let before = metrics(&app).await;
    let hashed = metric(&before, "opskit_auth_password_verifications_total");
    assert!(hashed >= 3, "{before}");
    for _ in 0..10 {
        problem(basic(&app, "admin", "guess-wrong").await, 429).await;
    }
    let after = metrics(&app).await;
    assert_eq!(
        metric(&after, "opskit_auth_password_verifications_total"),
        hashed,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            r#"opskit_auth_failures_total{method="basic",reason="bad_credentials"}"#
        ),
        2,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            r#"opskit_auth_failures_total{method="basic",reason="throttled"}"#
        ),
        10,
        "{after}"
    );
}

both!(hardening::metric_labels_come_from_a_closed_set);
/// Finding 4: random method names and paths must not grow /metrics.
pub async fn metric_labels_come_from_a_closed_set(app: TestApp) {
    let before = metrics(&app).await.len();
    for i in 0..50 {
        let name = format!("M{i}{}", "X".repeat(2000));
        let m = Method::from_bytes(name.as_bytes()).unwrap();
        let _ = app.req(m, "/api/v1/servers").send().await.unwrap();
        let _ = app
            .req(Method::GET, &format!("/nowhere/{i}/{}", "y".repeat(500)))
            .send()
            .await
            .unwrap();
    }
    let text = metrics(&app).await;
    assert!(!text.contains("XXXX"), "a method name became a label");
    assert!(!text.contains("yyyy"), "a path became a label");
    assert!(text.contains(r#"method="_OTHER""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(text.len() < before + 4000, "{} -> {}", before, text.len());
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.req(Method::POST, "/auth/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

async fn login_as(app: &TestApp, user: &str, password: &str) -> (String, String) {
    let v = app.login(user, password).await;
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn add_user(app: &TestApp, name: &str) {
    opskit_server::users::add_user(
        &app.db().await,
        name,
        secrecy::SecretString::from("user-password-1"),
        opskit_server::model::Role::Operator,
    )
    .await
    .unwrap();
}

/// Polls `GET /auth/me` with `token` until it is refused (within 10 s).
async fn until_refused(app: &TestApp, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app
            .req(Method::GET, "/auth/me")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            return problem(r, 401).await;
        }
        assert_eq!(r.status(), 200);
        assert!(
            Instant::now() < deadline,
            "the access token still works 10 s later"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn quick_recheck() -> Options {
    Options {
        user_recheck: Some(Duration::from_millis(200)),
        ..Default::default()
    }
}

both!(
    hardening::a_password_change_revokes_every_login,
    crate::hardening::quick_recheck()
);
/// Finding 5: `opskit user passwd` left refresh tokens valid.
pub async fn a_password_change_revokes_every_login(app: TestApp) {
    add_user(&app, "carol").await;
    let (access, refresh_token) = login_as(&app, "carol", "user-password-1").await;
    opskit_server::users::set_password(
        &app.db().await,
        "carol",
        secrecy::SecretString::from("new-password-2"),
    )
    .await
    .unwrap();
    problem(refresh(&app, &refresh_token).await, 401).await;
    until_refused(&app, &access).await;
    // the new password works
    login_as(&app, "carol", "new-password-2").await;
}

both!(
    hardening::removing_a_user_revokes_their_refresh_tokens,
    crate::hardening::quick_recheck()
);
pub async fn removing_a_user_revokes_their_refresh_tokens(app: TestApp) {
    add_user(&app, "dave").await;
    let (access, refresh_token) = login_as(&app, "dave", "user-password-1").await;
    opskit_server::users::remove_user(&app.db().await, "dave")
        .await
        .unwrap();
    problem(refresh(&app, &refresh_token).await, 401).await;
    until_refused(&app, &access).await;
}

both!(hardening::logout_stops_that_logins_access_tokens);
/// Finding 6: access tokens outlived logout (up to 15 min). Now within the re-check bound (10 s
/// by default, used here), and other logins of the same user keep working.
pub async fn logout_stops_that_logins_access_tokens(app: TestApp) {
    let (access, rt) = login_as(&app, "admin", ADMIN_PASSWORD).await;
    let (other, _) = login_as(&app, "admin", ADMIN_PASSWORD).await;
    let r = app
        .req(Method::POST, "/auth/logout")
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let p = until_refused(&app, &access).await;
    assert!(p["detail"].as_str().unwrap().contains("logged out"), "{p}");
    let r = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

both!(hardening::token_reuse_stops_the_familys_access_tokens);
pub async fn token_reuse_stops_the_familys_access_tokens(app: TestApp) {
    let (_, r1) = login_as(&app, "admin", ADMIN_PASSWORD).await;
    let second: Value = refresh(&app, &r1).await.json().await.unwrap();
    let access = second["access_token"].as_str().unwrap().to_owned();
    // r1 again: theft; the whole family, and its access tokens, die
    let p = problem(refresh(&app, &r1).await, 401).await;
    assert!(
        p["detail"].as_str().unwrap().contains("already used"),
        "{p}"
    );
    until_refused(&app, &access).await;
}

both!(hardening::refresh_after_logout_is_not_called_reuse);
/// Finding 9: refresh after logout was reported as token reuse (a false theft alarm).
pub async fn refresh_after_logout_is_not_called_reuse(app: TestApp) {
    let (_, rt) = login_as(&app, "admin", ADMIN_PASSWORD).await;
    let r = app
        .req(Method::POST, "/auth/logout")
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let p = problem(refresh(&app, &rt).await, 401).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(!detail.contains("already used"), "{detail}");
    assert!(detail.contains("revoked"), "{detail}");
}

both!(
    hardening::a_body_that_does_not_arrive_is_408,
    crate::support::Options {
        request_timeout: Some(std::time::Duration::from_millis(500)),
        ..Default::default()
    }
);
/// Finding 7: a slow request body got 503 (a server error for the client's fault).
pub async fn a_body_that_does_not_arrive_is_408(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/servers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
}

both!(hardening::if_match_is_strong);
/// Finding 8: `W/"etag"` matched and `"x", *` was accepted (both now fail the precondition).
pub async fn if_match_is_strong(app: TestApp) {
    let s = app.create_ok("strong01", "prod").await;
    let path = format!("/api/v1/servers/{}", s["id"].as_str().unwrap());
    let r = app.admin_req(Method::GET, &path).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let patch = |tag: String| {
        app.admin_req(Method::PATCH, &path)
            .header("if-match", tag)
            .json(&json!({"env": "dev"}))
            .send()
    };
    problem(patch(format!("W/{etag}")).await.unwrap(), 412).await;
    problem(patch("\"x\", *".into()).await.unwrap(), 412).await;
    problem(patch("0".into()).await.unwrap(), 412).await;
    problem(patch("\"x\"".into()).await.unwrap(), 412).await;
    assert_eq!(patch(format!("\"x\", {etag}")).await.unwrap().status(), 200);
    assert_eq!(patch("*".into()).await.unwrap().status(), 200);
}

/// A token signed with the server's key, with `edit` applied to a valid token's claims.
async fn signed(app: &TestApp, edit: impl Fn(&mut Value, i64)) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = app.admin.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    let secret = app
        .db()
        .await
        .get_setting("jwt_secret")
        .await
        .unwrap()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    edit(&mut claims, now);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

both!(hardening::jwt_time_and_audience_claims_are_checked);
/// Finding 9: a future `nbf`/`iat`, an `exp` years ahead and tokens without `iss`/`aud` were
/// accepted.
pub async fn jwt_time_and_audience_claims_are_checked(app: TestApp) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = app.admin.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["iss"], "opskit", "{claims}");
    assert_eq!(claims["aud"], "opskit", "{claims}");
    let me = |t: String| app.req(Method::GET, "/auth/me").bearer_auth(t).send();
    // control: the claims as issued, re-signed, are accepted
    let ok = signed(&app, |_, _| {}).await;
    assert_eq!(me(ok).await.unwrap().status(), 200);
    let cases: Vec<(&str, String)> = vec![
        (
            "nbf ahead",
            signed(&app, |c, now| c["nbf"] = json!(now + 3600)).await,
        ),
        (
            "iat ahead",
            signed(&app, |c, now| c["iat"] = json!(now + 3600)).await,
        ),
        (
            "exp years ahead",
            signed(&app, |c, now| c["exp"] = json!(now + 10 * 365 * 86400)).await,
        ),
        (
            "no iss",
            signed(&app, |c, _| {
                c.as_object_mut().unwrap().remove("iss");
            })
            .await,
        ),
        (
            "other iss",
            signed(&app, |c, _| c["iss"] = json!("evil")).await,
        ),
        (
            "no aud",
            signed(&app, |c, _| {
                c.as_object_mut().unwrap().remove("aud");
            })
            .await,
        ),
        (
            "other aud",
            signed(&app, |c, _| c["aud"] = json!("other")).await,
        ),
    ];
    for (what, token) in cases {
        let r = me(token).await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
    }
}

both!(hardening::control_and_bidi_characters_are_refused);
/// Finding 9: label keys and values took NUL, control characters, CR/LF and bidi overrides.
pub async fn control_and_bidi_characters_are_refused(app: TestApp) {
    let bad = [
        "a\u{0}b",
        "line\r\nInjected: 1",
        "tab\there",
        "\u{202e}gnp.exe",
        "x\u{2066}y",
        "del\u{7f}",
    ];
    for (i, v) in bad.iter().enumerate() {
        let host = format!("ctl{i}");
        // in a label value
        let r = app
            .create(
                json!({"hostname": host, "ip": "10.0.0.1", "env": "prod", "labels": {"team": v}}),
            )
            .await;
        let p = problem(r, 422).await;
        assert_eq!(
            p["errors"][0]["loc"],
            json!(["body", "labels", "team"]),
            "{p}"
        );
        // in a label key
        let r = app
            .create(json!({"hostname": host, "ip": "10.0.0.1", "env": "prod", "labels": {*v: "x"}}))
            .await;
        let p = problem(r, 422).await;
        assert_eq!(p["errors"][0]["loc"][1], "labels", "{p}");
        assert!(!p.to_string().contains('\u{202e}'), "echoed: {p}");
        // in a tag and a hostname
        let r = app
            .create(json!({"hostname": host, "ip": "10.0.0.1", "env": "prod", "tags": [v]}))
            .await;
        let p = problem(r, 422).await;
        assert_eq!(p["errors"][0]["loc"], json!(["body", "tags", 0]), "{p}");
        let r = app
            .create(json!({"hostname": format!("h{v}"), "ip": "10.0.0.1", "env": "prod"}))
            .await;
        let p = problem(r, 422).await;
        assert_eq!(p["errors"][0]["loc"], json!(["body", "hostname"]), "{p}");
    }
    // ordinary non-ASCII text is fine in a label
    let r = app
        .create(json!({"hostname": "ctl-ok", "ip": "10.0.0.1", "env": "prod", "labels": {"owner": "Zoë Çelik"}}))
        .await;
    assert_eq!(r.status(), 201);
}

both!(hardening::method_not_allowed_lists_the_allowed_methods);
/// Finding 9: the 405 detail said `allowed: ` (empty) while the Allow header was right.
pub async fn method_not_allowed_lists_the_allowed_methods(app: TestApp) {
    let r = app
        .admin_req(Method::DELETE, "/api/v1/servers")
        .send()
        .await
        .unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let p = problem(r, 405).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("GET") && detail.contains("POST"),
        "{detail}"
    );
}

both!(
    hardening::login_429_has_no_general_rate_headers,
    crate::hardening::throttled(1)
);
/// Finding 9: a login 429 carried the general limiter's RateLimit-* headers.
pub async fn login_429_has_no_general_rate_headers(app: TestApp) {
    let wrong = json!({"username": "admin", "password": "wrong-pass"});
    let r = app
        .req(Method::POST, "/auth/login")
        .json(&wrong)
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .req(Method::POST, "/auth/login")
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    for h in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "x-ratelimit-limit",
    ] {
        assert!(!r.headers().contains_key(h), "{h}: {:?}", r.headers());
    }
}
