use opskit_http::{
    BODY_EXCERPT_LIMIT, Client, ClientConfig, DEFAULT_USER_AGENT, Error, StatusCode,
};
use serde_json::Value;

use crate::fixture::Fixture;
use crate::retry::closed_port;
use crate::support::{config, observed};

#[tokio::test]
async fn statuses_are_errors_only_when_asked() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let resp = client.get("status/404").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let err = resp.error_for_status().await.unwrap_err();
    let Error::Status(s) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(s.status, StatusCode::NOT_FOUND);
    assert_eq!(s.headers.get("x-fixture").unwrap(), "yes");
    assert!(s.body_excerpt.starts_with("error body"));
    assert!(s.body_excerpt.len() <= BODY_EXCERPT_LIMIT);
    assert!(s.url.ends_with("/status/404"));
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    let ok = client
        .get("echo")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let port = closed_port().await;
    let client = Client::new(
        ClientConfig::new(format!("http://127.0.0.1:{port}/"))
            .retry(opskit_http::RetryPolicy::none()),
    )
    .unwrap();
    let err = client.get("x").send().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_connection());
}

#[tokio::test]
async fn bad_json_is_a_decode_error() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let err = client
        .get("status/200")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_mid_body_reset_is_a_transport_error() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let err = client
        .get("reset")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[test]
fn bad_configuration_and_usage_are_reported_clearly() {
    let err = Client::new(ClientConfig::new("not a url")).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    assert!(err.to_string().contains("not a url"));
    let err = Client::new(ClientConfig::new("ftp://x/")).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    let err = Client::new(ClientConfig::default().header("bad header", "x")).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    let mut cfg = ClientConfig::default();
    cfg.tls.ca_bundle = Some("/nonexistent/ca.pem".into());
    assert!(matches!(
        Client::new(cfg).unwrap_err(),
        Error::Config { .. }
    ));
}

#[tokio::test]
async fn usage_errors_come_back_from_send() {
    let client = Client::new(ClientConfig::default()).unwrap();
    let err = client.get("relative/path").send().await.unwrap_err();
    assert!(matches!(err, Error::Usage { .. }));
    assert!(err.to_string().contains("base URL"));
    let client = Client::new(ClientConfig::new("http://127.0.0.1:1/")).unwrap();
    let err = client
        .get("x")
        .header("X-Bad", "line\nbreak")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Usage { .. }));
}

#[tokio::test]
async fn user_agent_default_headers_query_and_verbose_events() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(
        config(&fx.base())
            .header("X-Team", "ops")
            .header("X-Api-Token", "tok-secret"),
    );
    let v: Value = client
        .get("/echo")
        .query(&[("q", "a b"), ("n", "1")])
        .header("Authorization", "Bearer very-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["user-agent"], DEFAULT_USER_AGENT);
    assert!(DEFAULT_USER_AGENT.starts_with("opskit/"));
    assert_eq!(v["headers"]["x-team"], "ops");
    assert_eq!(v["query"], "q=a+b&n=1");
    let shown = format!(
        "{:?}{:?}",
        rec.requests.lock().unwrap(),
        rec.responses.lock().unwrap()
    );
    assert!(shown.contains("x-team"));
    assert!(
        !shown.contains("very-secret") && !shown.contains("tok-secret"),
        "{shown}"
    );
    let resp = &rec.responses.lock().unwrap()[0];
    assert_eq!(resp.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_go_through_the_configured_proxy_with_its_credentials() {
    // The fixture answers absolute-form proxy requests as if it were the target.
    let proxy = Fixture::start().await;
    let target_port = closed_port().await;
    let cfg = ClientConfig::default().proxy(opskit_http::ProxyConfig {
        url: proxy.base(),
        username: Some("proxyuser".into()),
        password: Some(opskit_http::Secret::value("proxypass")),
        no_proxy: None,
    });
    assert!(!format!("{cfg:?}").contains("proxypass"));
    let client = Client::new(cfg).unwrap();
    let v: Value = client
        .get(&format!("http://127.0.0.1:{target_port}/echo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["method"], "GET");
    let hits = proxy.state.hits("/echo");
    assert_eq!(hits.len(), 1);
    // base64("proxyuser:proxypass")
    assert_eq!(
        hits[0].headers.get("proxy-authorization").unwrap(),
        "Basic cHJveHl1c2VyOnByb3h5cGFzcw=="
    );
}
