use std::sync::atomic::Ordering;
use std::time::Duration;

use opskit_http::{
    ApiKeyLocation, Auth, Client, ClientConfig, Error, OAuth2ClientCredentials, RefreshTokenAuth,
    Secret, StatusCode,
};
use serde_json::Value;

use crate::fixture::Fixture;
use crate::support::observed;

async fn echo(client: &Client) -> Value {
    client
        .get("echo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn basic_auth_and_redaction() {
    let fx = Fixture::start().await;
    let cfg = ClientConfig::new(fx.base()).auth(Auth::Basic {
        username: "ops".into(),
        password: Secret::value("s3cr3t-pw"),
    });
    assert!(!format!("{cfg:?}").contains("s3cr3t-pw"));
    let (client, rec) = observed(cfg);
    let v = echo(&client).await;
    // base64("ops:s3cr3t-pw")
    assert_eq!(v["headers"]["authorization"], "Basic b3BzOnMzY3IzdC1wdw==");
    let reqs = rec.requests.lock().unwrap();
    let auth = reqs[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap();
    assert_eq!(auth.1, opskit_http::REDACTED);
}

#[tokio::test]
async fn bearer_from_env_file_and_command() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "file-token\n").unwrap();
    for (secret, expected) in [
        (Secret::file(&path), "Bearer file-token"),
        (Secret::command("printf 'cmd-token\\n'"), "Bearer cmd-token"),
        // any variable that is surely set; the value is the token
        (Secret::env("PATH"), "Bearer /"),
    ] {
        let client = Client::new(ClientConfig::new(fx.base()).auth(Auth::Bearer(secret))).unwrap();
        let v = echo(&client).await;
        assert!(
            v["headers"]["authorization"]
                .as_str()
                .unwrap()
                .starts_with(expected)
        );
    }
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_auth_error() {
    let fx = Fixture::start().await;
    let client = Client::new(
        ClientConfig::new(fx.base())
            .auth(Auth::Bearer(Secret::env("OPSKIT_TEST_SURELY_UNSET_TOKEN"))),
    )
    .unwrap();
    let err = client.get("echo").send().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }));
    assert!(err.to_string().contains("OPSKIT_TEST_SURELY_UNSET_TOKEN"));
    let client =
        Client::new(ClientConfig::new(fx.base()).auth(Auth::Bearer(Secret::command("exit 3"))))
            .unwrap();
    assert!(matches!(
        client.get("echo").send().await.unwrap_err(),
        Error::Auth { .. }
    ));
}

#[tokio::test]
async fn api_key_in_header_or_query_is_sent_and_redacted() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(ClientConfig::new(fx.base()).auth(Auth::ApiKey {
        name: "X-Service-Key".into(),
        value: Secret::value("k-123"),
        location: ApiKeyLocation::Header,
    }));
    let v = echo(&client).await;
    assert_eq!(v["headers"]["x-service-key"], "k-123");
    assert!(!format!("{:?}", rec.requests.lock().unwrap()).contains("k-123"));

    let (client, rec) = observed(ClientConfig::new(fx.base()).auth(Auth::ApiKey {
        name: "sig".into(),
        value: Secret::value("q-456"),
        location: ApiKeyLocation::Query,
    }));
    let v = echo(&client).await;
    assert_eq!(v["query"], "sig=q-456");
    let shown = format!(
        "{:?}{:?}",
        rec.requests.lock().unwrap(),
        rec.responses.lock().unwrap()
    );
    assert!(!shown.contains("q-456"), "{shown}");
}

fn oauth(fx: &Fixture) -> OAuth2ClientCredentials {
    OAuth2ClientCredentials::new(fx.url("/oauth/token"), "cid", Secret::value("csecret"))
        .scope("read")
}

#[tokio::test]
async fn oauth2_token_is_cached_then_refreshed_once_on_401_and_replayed() {
    let fx = Fixture::start().await;
    let client = Client::new(ClientConfig::new(fx.base()).auth(Auth::OAuth2(oauth(&fx)))).unwrap();
    for _ in 0..3 {
        let r = client.get("protected").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(fx.state.token_fetches.load(Ordering::SeqCst), 1);
    fx.state.expire_token();
    let r = client.get("protected").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["token"], "tok-2");
    assert_eq!(fx.state.token_fetches.load(Ordering::SeqCst), 2);
    assert_eq!(fx.state.count("401"), 1);
    assert_eq!(client.token_fetches().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_401s_cause_exactly_one_refresh() {
    let fx = Fixture::start().await;
    let client = Client::new(ClientConfig::new(fx.base()).auth(Auth::OAuth2(oauth(&fx)))).unwrap();
    client
        .get("protected")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .await
        .unwrap();
    assert_eq!(fx.state.token_fetches.load(Ordering::SeqCst), 1);
    fx.state.expire_token();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = client.clone();
            let b = barrier.clone();
            tokio::spawn(async move {
                b.wait().await;
                c.get("protected").send().await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(fx.state.token_fetches.load(Ordering::SeqCst), 2);
    assert!(fx.state.count("401") >= 1);
}

#[tokio::test(start_paused = true)]
async fn oauth2_token_is_refreshed_before_expiry_minus_skew() {
    let fx = Fixture::start().await;
    fx.state.expires_in.store(40, Ordering::SeqCst);
    let mut o = oauth(&fx);
    o.expiry_skew = Duration::from_secs(30);
    let client = Client::new(ClientConfig::new(fx.base()).auth(Auth::OAuth2(o))).unwrap();
    client.get("protected").send().await.unwrap();
    client.get("protected").send().await.unwrap();
    assert_eq!(fx.state.token_fetches.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    client
        .get("protected")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .await
        .unwrap();
    assert_eq!(fx.state.token_fetches.load(Ordering::SeqCst), 2);
    assert_eq!(fx.state.count("401"), 0);
}

#[tokio::test]
async fn refresh_token_is_posted_on_401_and_the_request_replayed() {
    let fx = Fixture::start().await;
    let auth = Auth::RefreshToken(RefreshTokenAuth::new(
        Some(Secret::value("stale-access")),
        Secret::value("ref-0"),
        fx.url("/refresh"),
    ));
    let client = Client::new(ClientConfig::new(fx.base()).auth(auth)).unwrap();
    let r = client.get("protected").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["token"], "acc-1");
    // the rotated refresh token is used next time
    fx.state.expire_token();
    let r = client.get("protected").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token"], "acc-2");
    assert_eq!(fx.state.hits("/refresh").len(), 2);
    assert_eq!(fx.state.hits("/protected").len(), 4);
}

#[tokio::test]
async fn a_401_that_persists_is_returned_after_one_replay() {
    let fx = Fixture::start().await;
    let auth = Auth::RefreshToken(RefreshTokenAuth::new(
        Some(Secret::value("stale")),
        Secret::value("wrong-refresh"),
        fx.url("/refresh"),
    ));
    let client = Client::new(ClientConfig::new(fx.base()).auth(auth)).unwrap();
    let err = client.get("protected").send().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-refresh"));
}

#[tokio::test]
async fn oauth2_client_secret_post_and_a_refused_client() {
    let fx = Fixture::start().await;
    let mut o = oauth(&fx);
    o.client_auth = opskit_http::ClientAuthMethod::Body;
    let client = Client::new(ClientConfig::new(fx.base()).auth(Auth::OAuth2(o))).unwrap();
    let r = client.get("protected").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token_req = &fx.state.hits("/oauth/token")[0];
    assert!(token_req.headers.get("authorization").is_none());

    let bad = OAuth2ClientCredentials::new(fx.url("/oauth/token"), "cid", Secret::value("wrong"));
    let client = Client::new(ClientConfig::new(fx.base()).auth(Auth::OAuth2(bad))).unwrap();
    let err = client.get("protected").send().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("401"));
    assert!(!err.to_string().contains("wrong"));
}
