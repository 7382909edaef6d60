//! Every way in, every role, refresh rotation and reuse detection, expired and tampered tokens.

use base64::Engine;
use opskit_server::model::Role;
use opskit_server::store::Store;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::support::{ADMIN_PASSWORD, TestApp, problem};

both!(auth::anonymous_is_401_and_public_routes_are_open);
pub async fn anonymous_is_401_and_public_routes_are_open(app: TestApp) {
    for path in [
        "/api/v1/servers",
        "/api/v1/servers/web01",
        "/metrics",
        "/auth/me",
    ] {
        let r = app.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        problem(r, 401).await;
    }
    for path in ["/health", "/openapi.json", "/docs/"] {
        let r = app.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

both!(auth::roles_decide_who_may_write);
pub async fn roles_decide_who_may_write(app: TestApp) {
    let viewer = app.user_token("vera", "viewer").await;
    let operator = app.user_token("otto", "operator").await;
    let body = json!({"hostname": "role01", "ip": "10.0.0.1", "env": "prod"});
    let r = app
        .req(Method::POST, "/api/v1/servers")
        .bearer_auth(&viewer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let p = problem(r, 403).await;
    assert!(p["detail"].as_str().unwrap().contains("viewer"));
    // the role is refused before the body is read: a viewer's bad body is still a 403
    for (method, path, ct) in [
        (Method::POST, "/api/v1/servers", "text/plain"),
        (Method::PUT, "/api/v1/servers/role01", "text/plain"),
        (Method::PATCH, "/api/v1/servers/role01", "application/json"),
    ] {
        let r = app
            .req(method.clone(), path)
            .bearer_auth(&viewer)
            .header("content-type", ct)
            .body("{not json")
            .send()
            .await
            .unwrap();
        problem(r, 403).await;
    }
    let r = app
        .req(Method::POST, "/api/v1/servers")
        .bearer_auth(&operator)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for (token, expect) in [(&viewer, 403), (&operator, 200)] {
        let r = app
            .req(Method::PATCH, "/api/v1/servers/role01")
            .bearer_auth(token)
            .json(&json!({"env": "dev"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expect);
    }
    let r = app
        .req(Method::GET, "/api/v1/servers/role01")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .req(Method::DELETE, "/api/v1/servers/role01")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    let me: Value = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        json!({"name": "otto", "role": "operator", "kind": "user"})
    );
}

both!(auth::wrong_password_is_401);
pub async fn wrong_password_is_401(app: TestApp) {
    for (user, pw) in [("admin", "nope-nope"), ("ghost", ADMIN_PASSWORD)] {
        let r = app
            .req(Method::POST, "/auth/login")
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap();
        let p = problem(r, 401).await;
        assert_eq!(p["detail"], "wrong username or password");
    }
    let r = app
        .req(Method::POST, "/auth/login")
        .json(&json!({"username": 1}))
        .send()
        .await
        .unwrap();
    let p = problem(r, 422).await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.req(Method::POST, "/auth/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

both!(auth::refresh_rotates_and_reuse_revokes_the_family);
pub async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
    let login = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login["token_type"], "Bearer");
    assert!(login["expires_in"].as_u64().unwrap() > 0);
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    let resp = refresh(&app, &r1).await;
    assert_eq!(resp.status(), 200);
    let second: Value = resp.json().await.unwrap();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    // the new access token works
    let r = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // presenting r1 again is theft: 401, and r2 dies with it
    let p = problem(refresh(&app, &r1).await, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("already used"));
    problem(refresh(&app, &r2).await, 401).await;
    // another login is a separate family and is unaffected
    let other = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        refresh(&app, other["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    problem(refresh(&app, "made-up-token").await, 401).await;
}

both!(auth::logout_revokes_the_refresh_token);
pub async fn logout_revokes_the_refresh_token(app: TestApp) {
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let rt = login["refresh_token"].as_str().unwrap();
    let r = app
        .req(Method::POST, "/auth/logout")
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    problem(refresh(&app, rt).await, 401).await;
}

both!(auth::api_keys_via_header_and_bearer);
pub async fn api_keys_via_header_and_bearer(app: TestApp) {
    let db = app.db().await;
    let (key, rec) = opskit_server::users::create_api_key(&db, "ci", Role::Operator)
        .await
        .unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&key).to_owned();
    assert!(key.starts_with("opk_"));
    // only a hash is stored
    let stored = db.list_api_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].key_hash, key);
    assert!(!stored[0].key_hash.contains(&key[4..]));

    let r = app
        .req(Method::POST, "/api/v1/servers")
        .header("x-api-key", &key)
        .json(&json!({"hostname": "key01", "ip": "10.0.0.1", "env": "prod"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let me: Value = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        json!({"name": "ci", "role": "operator", "kind": "api_key"})
    );

    let (viewer_key, _) = opskit_server::users::create_api_key(&db, "dash", Role::Viewer)
        .await
        .unwrap();
    let viewer_key = secrecy::ExposeSecret::expose_secret(&viewer_key).to_owned();
    let r = app
        .req(Method::DELETE, "/api/v1/servers/key01")
        .header("x-api-key", &viewer_key)
        .send()
        .await
        .unwrap();
    problem(r, 403).await;

    opskit_server::users::revoke_api_key(&db, &rec.id.to_string())
        .await
        .unwrap();
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let p = problem(r, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"));
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .header("x-api-key", "opk_wrong")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
}

both!(auth::http_basic_for_scripts);
pub async fn http_basic_for_scripts(app: TestApp) {
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .basic_auth("admin", Some("wrong-one"))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .header("authorization", "Digest abc")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
}

both!(
    auth::http_basic_can_be_turned_off,
    crate::support::Options {
        basic_auth: Some(false),
        ..Default::default()
    }
);
pub async fn http_basic_can_be_turned_off(app: TestApp) {
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let p = problem(r, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("turned off"));
}

both!(auth::expired_and_tampered_tokens_are_401);
pub async fn expired_and_tampered_tokens_are_401(app: TestApp) {
    // tampered: change the role in the payload, keep the signature
    let parts: Vec<&str> = app.admin.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["name"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let r = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .req(Method::GET, "/auth/me")
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;

    // expired: signed with the server's real key, but an hour old
    let db = app.db().await;
    let secret = db.get_setting("jwt_secret").await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    claims["name"] = json!("admin");
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let r = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    let p = problem(r, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    // the same claims, fresh, are accepted: the key was right
    claims["exp"] = json!(now + 600);
    let fresh = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let r = app
        .req(Method::GET, "/auth/me")
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

both!(
    auth::a_removed_users_access_token_stops_working,
    crate::support::Options {
        user_recheck: Some(std::time::Duration::ZERO),
        ..Default::default()
    }
);
/// The access token of a user removed with `opskit user remove` is refused once the server
/// looks the user up again (every 10 s by default; at once here), long before it expires.
pub async fn a_removed_users_access_token_stops_working(app: TestApp) {
    let token = app.user_token("gone", "operator").await;
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    opskit_server::users::remove_user(&app.db().await, "gone")
        .await
        .unwrap();
    let r = app
        .req(Method::GET, "/api/v1/servers")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let p = problem(r, 401).await;
    assert!(
        p["detail"].as_str().unwrap().contains("no longer exists"),
        "{p}"
    );
    // the admin's token is unaffected
    let r = app
        .admin_req(Method::GET, "/api/v1/servers")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
