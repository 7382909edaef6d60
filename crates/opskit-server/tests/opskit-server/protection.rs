//! Rate limits and their headers, CORS, request ids and security headers.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::support::{ADMIN_PASSWORD, TestApp, problem};

fn num(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

both!(
    protection::rate_limit_per_principal_with_headers,
    crate::support::Options {
        rate_limit: Some(3),
        ..Default::default()
    }
);
pub async fn rate_limit_per_principal_with_headers(app: TestApp) {
    // the admin's login in TestApp::start used one anonymous (per-IP) request
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = app
            .admin_req(Method::GET, "/api/v1/servers")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(num(&r, "ratelimit-limit"), 3);
        assert_eq!(num(&r, "x-ratelimit-limit"), 3);
        assert_eq!(
            num(&r, "ratelimit-remaining"),
            num(&r, "x-ratelimit-remaining")
        );
        remaining.push(num(&r, "ratelimit-remaining"));
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry = num(&r, "retry-after");
    assert!(retry >= 1);
    assert_eq!(num(&r, "ratelimit-remaining"), 0);
    problem(r, 429).await;
    // another principal has its own budget
    let db = app.db().await;
    let (key, _) =
        opskit_server::users::create_api_key(&db, "other", opskit_server::model::Role::Viewer)
            .await
            .unwrap();
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .header("x-api-key", secrecy::ExposeSecret::expose_secret(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(num(&r, "ratelimit-remaining"), 2);
}

both!(
    protection::login_attempts_are_limited_separately,
    crate::support::Options {
        login_rate_limit: Some(3),
        ..Default::default()
    }
);
pub async fn login_attempts_are_limited_separately(app: TestApp) {
    // failed attempts count (the admin login at start-up succeeded and did not)
    for _ in 0..3 {
        let r = app
            .req(Method::POST, "/auth/login")
            .json(&json!({"username": "admin", "password": "wrong-pass"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app
        .req(Method::POST, "/auth/login")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429).await;
    // the API itself is not affected
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

both!(
    protection::cors_allow_list,
    crate::support::Options {
        cors: vec!["https://ops.example.com".into()],
        ..Default::default()
    }
);
pub async fn cors_allow_list(app: TestApp) {
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .header("origin", "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let pre = app
        .req(Method::OPTIONS, "/api/v1/servers")
        .header("origin", "https://ops.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    assert!(
        pre.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let pre = app
        .req(Method::OPTIONS, "/api/v1/servers")
        .header("origin", "https://evil.example.net")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!pre.headers().contains_key("access-control-allow-origin"));
}

both!(protection::no_cors_by_default);
pub async fn no_cors_by_default(app: TestApp) {
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .header("origin", "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

both!(protection::request_id_and_security_headers);
pub async fn request_id_and_security_headers(app: TestApp) {
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().contains_key("content-security-policy"));
    let r = app.req(Method::GET, "/nowhere").send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    problem(r, 404).await;
}
