//! `/api/v1/events`: signed, unsigned, tampered, replayed, stale, oversized and non-JSON
//! deliveries, and the listing with paging, filters and auth.

use opskit_notify::signing::{WebhookSecret, sign, unix_now};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

use crate::both;
use crate::support::{Options, TestApp, problem};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signed(app: &TestApp, path: &str, id: &str, ts: i64, body: &str) -> RequestBuilder {
    signed_as(app, path, id, ts, body, "application/json")
}

fn signed_as(app: &TestApp, path: &str, id: &str, ts: i64, body: &str, ct: &str) -> RequestBuilder {
    let secret = WebhookSecret::parse(SECRET).expect("secret");
    let h = sign(&[secret], id, ts, body.as_bytes()).expect("sign");
    let mut r = app
        .req(Method::POST, path)
        .header("content-type", ct)
        .body(body.to_owned());
    for (k, v) in h.pairs() {
        r = r.header(k, v);
    }
    r
}

fn with_secret() -> Options {
    Options {
        events_secret: Some(SECRET),
        ..Options::default()
    }
}

async fn reason(r: reqwest::Response, status: u16) -> String {
    problem(r, status).await["reason"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

both!(events::signed_deliveries, super::with_secret());
pub async fn signed_deliveries(app: TestApp) {
    let now = unix_now();
    let body = r#"{"alert":"disk full","host":"web1"}"#;
    let r = signed(&app, "/api/v1/events?source=gatus", "msg_1", now, body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let ev: Value = r.json().await.expect("json");
    assert_eq!(ev["source"], "gatus");
    assert_eq!(ev["webhook_id"], "msg_1");
    assert_eq!(ev["verified"], true);
    assert_eq!(ev["payload"]["host"], "web1");

    // replayed id: rejected, also with a fresh valid signature
    let r = signed(&app, "/api/v1/events", "msg_1", now, body)
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 409).await, "replayed");
    // tampered body
    let r = signed(&app, "/api/v1/events", "msg_2", now, body)
        .body(r#"{"alert":"all fine","host":"web1"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 401).await, "bad_signature");
    // too old, too new
    let r = signed(&app, "/api/v1/events", "msg_3", now - 3600, body)
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 401).await, "timestamp_too_old");
    let r = signed(&app, "/api/v1/events", "msg_4", now + 3600, body)
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 401).await, "timestamp_too_new");
    // unsigned, even with an admin credential
    let r = app
        .admin_req(Method::POST, "/api/v1/events")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 401).await, "missing_signature");
    // malformed signature header
    let r = signed(&app, "/api/v1/events", "msg_5", now, body)
        .header("webhook-timestamp", "yesterday")
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 401).await, "malformed_headers");
    // signed but not JSON
    let r = signed_as(
        &app,
        "/api/v1/events",
        "msg_6",
        now,
        "not json",
        "text/plain",
    )
    .send()
    .await
    .expect("send");
    problem(r, 415).await;
    let r = signed(&app, "/api/v1/events", "msg_7", now, "{oops")
        .send()
        .await
        .expect("send");
    problem(r, 400).await;
    // only the first delivery was stored
    let r = app
        .admin_req(Method::GET, "/api/v1/events")
        .send()
        .await
        .expect("list");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total"], 1);

    // oversized (last: the server answers 413 without reading the body and closes that
    // connection, so a request reusing it from the client's pool could fail)
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100 * 1024));
    let r = signed(&app, "/api/v1/events", "msg_8", now, &big)
        .send()
        .await
        .expect("send");
    problem(r, 413).await;
}

both!(events::unsigned_needs_a_writer);
pub async fn unsigned_needs_a_writer(app: TestApp) {
    let body = r#"{"a":1}"#;
    let r = app
        .req(Method::POST, "/api/v1/events")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    problem(r, 401).await;
    let viewer = app.user_token("vera", "viewer").await;
    let r = app
        .req(Method::POST, "/api/v1/events")
        .bearer_auth(&viewer)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    problem(r, 403).await;
    let r = app
        .admin_req(Method::POST, "/api/v1/events")
        .header("content-type", "application/json")
        .header("x-opskit-source", "cron")
        .header("webhook-id", "job-1")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let ev: Value = r.json().await.expect("json");
    assert_eq!(ev["source"], "cron");
    assert_eq!(ev["verified"], false);
    let r = app
        .admin_req(Method::POST, "/api/v1/events")
        .header("content-type", "application/json")
        .header("webhook-id", "job-1")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r, 409).await, "replayed");
    let r = app
        .admin_req(Method::POST, "/api/v1/events")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("send");
    problem(r, 415).await;
    // listing: viewer may read, anonymous may not
    let r = app
        .req(Method::GET, "/api/v1/events")
        .send()
        .await
        .expect("list");
    problem(r, 401).await;
    let r = app
        .req(Method::GET, "/api/v1/events")
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), 200);
}

both!(events::list_paging_and_filters);
pub async fn list_paging_and_filters(app: TestApp) {
    for i in 0..5 {
        let source = if i % 2 == 0 { "even" } else { "odd" };
        let r = app
            .admin_req(Method::POST, &format!("/api/v1/events?source={source}"))
            .header("content-type", "application/json")
            .header("webhook-id", format!("id-{i}"))
            .body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
    }
    let r = app
        .admin_req(Method::GET, "/api/v1/events?per_page=2&page=2")
        .send()
        .await
        .expect("list");
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        link.contains("rel=\"next\"") && link.contains("rel=\"prev\""),
        "{link}"
    );
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total"], 5);
    assert_eq!(page["total_pages"], 3);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    // newest first
    let r = app
        .admin_req(Method::GET, "/api/v1/events")
        .send()
        .await
        .expect("list");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["data"][0]["payload"]["n"], 4);

    let r = app
        .admin_req(Method::GET, "/api/v1/events?source=odd")
        .send()
        .await
        .expect("list");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total"], 2);
    let r = app
        .admin_req(Method::GET, "/api/v1/events?webhook_id=id-3")
        .send()
        .await
        .expect("list");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total"], 1);
    assert_eq!(page["data"][0]["payload"]["n"], 3);
    let r = app
        .admin_req(
            Method::GET,
            "/api/v1/events?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z",
        )
        .send()
        .await
        .expect("list");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total"], 0);
    let r = app
        .admin_req(Method::GET, "/api/v1/events?since=2000-01-01T00:00:00Z")
        .send()
        .await
        .expect("list");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["total"], 5);
    let r = app
        .admin_req(Method::GET, "/api/v1/events?since=yesterday")
        .send()
        .await
        .expect("list");
    problem(r, 422).await;
}
