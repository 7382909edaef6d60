//! Delivery through opskit-http to the local stand-ins: formats, retries, Retry-After, timeouts,
//! pacing, the same webhook-id on every attempt, and final errors that say what was answered.

use std::time::Duration;

use opskit_http::Secret;
use opskit_notify::deliver::FailureKind;
use opskit_notify::jira::IssueRequest;
use opskit_notify::signing::{ReceivedHeaders, Verifier, WebhookSecret, XSignatureSecret};
use opskit_notify::teams::CardFormat;
use opskit_notify::{
    Alert, ChatSender, DeliveryOptions, Error, JiraClient, JiraOutcome, Severity, Signing,
    WebhookSender,
};
use secrecy::SecretString;

use crate::fixtures::{Fault, Fixture, Vendor};

/// Quick retries so the suite stays fast; timeouts short enough for the hang faults.
fn fast(base: DeliveryOptions) -> DeliveryOptions {
    DeliveryOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        retries: 3,
        backoff: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..base
    }
}

fn alert() -> Alert {
    Alert::new(Severity::Critical, "Database down", "Failover started")
        .host("db-prod-01")
        .field("Environment", "production")
}

fn slack_url(f: &Fixture) -> SecretString {
    SecretString::from(f.url("/services/T000/B000/XXXXSECRETXXXX"))
}

fn delivery_error(e: Error) -> (FailureKind, u32, String) {
    match e {
        Error::Delivery {
            kind,
            attempts,
            detail,
            destination,
        } => (kind, attempts, format!("{destination}: {detail}")),
        other => panic!("expected a delivery error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_message_arrives_in_slacks_format() {
    let f = Fixture::start(Vendor::Slack).await;
    let sender = ChatSender::new(&fast(DeliveryOptions::slack())).unwrap();
    let done = sender.slack(&slack_url(&f), &alert()).await.unwrap();
    assert_eq!(
        (done.status, done.attempts, done.body.as_str()),
        (200, 1, "ok")
    );
    f.assert_valid();
    let req = &f.requests()[0];
    assert_eq!(req.path, "/services/T000/B000/XXXXSECRETXXXX");
    assert_eq!(req.json()["attachments"][0]["color"], "#FF0000");
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_5xx_are_retried_until_it_works() {
    let f = Fixture::start(Vendor::Slack).await;
    f.fail_next([Fault::Status(500), Fault::Status(503)]);
    let sender = ChatSender::new(&fast(DeliveryOptions::default())).unwrap();
    let done = sender.slack(&slack_url(&f), &alert()).await.unwrap();
    assert_eq!(done.attempts, 3);
    assert_eq!(f.requests().len(), 3);
    f.assert_valid();
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_429_waits_as_long_as_retry_after_says() {
    let f = Fixture::start(Vendor::Slack).await;
    f.fail_next([Fault::RetryAfter(1)]);
    let sender = ChatSender::new(&fast(DeliveryOptions::default())).unwrap();
    let done = sender.slack(&slack_url(&f), &alert()).await.unwrap();
    assert_eq!(done.attempts, 2);
    let reqs = f.requests();
    // The backoff alone would be 20 ms; the second attempt came after Slack's Retry-After.
    assert!(reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(950));
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_final_error_says_what_slack_answered_without_the_secret_url() {
    let f = Fixture::start(Vendor::Slack).await;
    f.fail_next(std::iter::repeat_n(Fault::Status(500), 10));
    let opts = DeliveryOptions {
        retries: 2,
        ..fast(DeliveryOptions::default())
    };
    let err = ChatSender::new(&opts)
        .unwrap()
        .slack(&slack_url(&f), &alert())
        .await
        .unwrap_err();
    let (kind, attempts, text) = delivery_error(err);
    assert_eq!(kind, FailureKind::Status(500));
    assert_eq!(attempts, 3);
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("fixture fault: 500"), "{text}");
    assert!(
        !text.contains("XXXXSECRETXXXX"),
        "the webhook URL is a secret: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_4xx_is_not_retried() {
    let f = Fixture::start(Vendor::Slack).await;
    f.fail_next([Fault::Status(404)]);
    let err = ChatSender::new(&fast(DeliveryOptions::default()))
        .unwrap()
        .slack(&slack_url(&f), &alert())
        .await
        .unwrap_err();
    let (kind, attempts, _) = delivery_error(err);
    assert_eq!((kind, attempts), (FailureKind::Status(404), 1));
    assert_eq!(f.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sender_paces_messages_to_the_same_destination() {
    let f = Fixture::start(Vendor::Slack).await;
    let opts = DeliveryOptions {
        pace: Some((1, Duration::from_millis(400))),
        ..fast(DeliveryOptions::default())
    };
    let sender = ChatSender::new(&opts).unwrap();
    for _ in 0..3 {
        sender.slack(&slack_url(&f), &alert()).await.unwrap();
    }
    let reqs = f.requests();
    assert_eq!(reqs.len(), 3);
    for pair in reqs.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(350));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_adaptive_card_and_message_card_arrive_in_teams_formats() {
    let wf = Fixture::start(Vendor::TeamsWorkflows).await;
    let sender = ChatSender::new(&fast(DeliveryOptions::teams())).unwrap();
    let url = SecretString::from(wf.url("/workflows/abc/triggers/manual/paths/invoke?sig=SECRET"));
    let done = sender
        .teams(&url, &alert(), CardFormat::Adaptive)
        .await
        .unwrap();
    assert_eq!(done.status, 202);
    wf.assert_valid();

    let legacy = Fixture::start(Vendor::TeamsConnector).await;
    let url = SecretString::from(legacy.url("/webhookb2/abc/IncomingWebhook/def"));
    let done = sender
        .teams(&url, &alert(), CardFormat::MessageCard)
        .await
        .unwrap();
    assert_eq!((done.status, done.body.as_str()), (200, "1"));
    legacy.assert_valid();
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_timeout_is_retried() {
    let f = Fixture::start(Vendor::TeamsWorkflows).await;
    f.fail_next([Fault::Hang(Duration::from_secs(10))]);
    let url = SecretString::from(f.url("/workflows/x"));
    let done = ChatSender::new(&fast(DeliveryOptions::default()))
        .unwrap()
        .teams(&url, &alert(), CardFormat::Adaptive)
        .await
        .unwrap();
    assert_eq!(done.attempts, 2);
    f.assert_valid();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_webhook_keeps_its_id_timestamp_and_signature() {
    let f = Fixture::start(Vendor::Webhook).await;
    f.fail_next([
        Fault::Status(500),
        Fault::Hang(Duration::from_secs(10)),
        Fault::RetryAfter(1),
    ]);
    let secret = WebhookSecret::generate();
    let body = br#"{"event":"deploy.finished","ok":true}"#.to_vec();
    let signing = Signing::Standard {
        secrets: vec![secret.clone()],
        id: None,
        timestamp: None,
    };
    let done = WebhookSender::new(&fast(DeliveryOptions::default()))
        .unwrap()
        .send(&f.url("/hooks/in"), body.clone(), &signing, &[])
        .await
        .unwrap();
    assert_eq!((done.status, done.attempts), (204, 4));
    let id = done.webhook_id.unwrap();
    assert!(id.starts_with("msg_"));
    let reqs = f.requests();
    assert_eq!(reqs.len(), 4);
    let first = &reqs[0];
    for r in &reqs {
        assert_eq!(r.header("webhook-id").as_deref(), Some(id.as_str()));
        assert_eq!(r.header("idempotency-key").as_deref(), Some(id.as_str()));
        assert_eq!(
            r.header("webhook-timestamp"),
            first.header("webhook-timestamp")
        );
        assert_eq!(
            r.header("webhook-signature"),
            first.header("webhook-signature")
        );
        assert_eq!(r.body, body);
    }
    // What arrived verifies at the receiver, byte for byte.
    let last = reqs.last().unwrap();
    let received = ReceivedHeaders::from_pairs(
        last.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
    );
    Verifier::new(vec![secret])
        .unwrap()
        .verify(&received, &last.body)
        .unwrap();
    f.assert_valid();
}

#[tokio::test(flavor = "multi_thread")]
async fn x_signature_style_webhook() {
    let f = Fixture::start(Vendor::Webhook).await;
    let secret = || XSignatureSecret::new(SecretString::from("s3cret")).unwrap();
    let body = br#"{"a":1}"#.to_vec();
    WebhookSender::new(&fast(DeliveryOptions::default()))
        .unwrap()
        .send(
            &f.url("/api/data"),
            body.clone(),
            &Signing::XSignature(secret()),
            &[("X-Source".into(), "opskit-test".into())],
        )
        .await
        .unwrap();
    let r = &f.requests()[0];
    secret()
        .verify(&r.header("x-signature").unwrap(), &r.body)
        .unwrap();
    assert_eq!(r.header("x-source").as_deref(), Some("opskit-test"));
    assert!(r.header("webhook-signature").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_endpoint_is_a_connection_failure() {
    // A loopback port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let opts = DeliveryOptions {
        retries: 1,
        ..fast(DeliveryOptions::default())
    };
    let err = WebhookSender::new(&opts)
        .unwrap()
        .send(
            &format!("http://127.0.0.1:{port}/x"),
            b"{}".to_vec(),
            &Signing::Unsigned,
            &[],
        )
        .await
        .unwrap_err();
    let (kind, _, text) = delivery_error(err);
    assert_eq!(kind, FailureKind::Connection, "{text}");
    assert!(text.contains("cannot connect"), "{text}");
}

fn jira_vendor() -> Vendor {
    Vendor::Jira {
        email: "ops@example.com".into(),
        token: "jira-token".into(),
    }
}

fn jira_client(f: &Fixture, token: &str) -> JiraClient {
    JiraClient::new(
        &f.url(""),
        "ops@example.com",
        Secret::value(token),
        &fast(DeliveryOptions::default()),
    )
    .unwrap()
}

fn incident() -> IssueRequest {
    let mut req = IssueRequest::new("OPS", "[ALERT] db-prod-02 - High CPU");
    req.description =
        Some("Time: 01:00\nServer: db-prod-02\n\nCPU above 95% for 10 minutes".into());
    req.priority = Some("High".into());
    req.labels = vec!["auto-created".into(), "monitoring-alert".into()];
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_issue_is_created_with_adf_and_basic_auth() {
    let f = Fixture::start(jira_vendor()).await;
    let out = jira_client(&f, "jira-token")
        .open(&incident(), false, "2026-11-22T01:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        out,
        JiraOutcome::Created {
            key: "OPS-1".into(),
            url: f.url("/browse/OPS-1")
        }
    );
    f.assert_valid();
    let body = f.requests()[0].json();
    assert_eq!(
        body["fields"]["description"]["content"][1]["content"][0]["text"],
        "CPU above 95% for 10 minutes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_dedupe_comments_on_the_open_issue_instead_of_opening_another() {
    let f = Fixture::start(jira_vendor()).await;
    let req = incident();
    f.seed_issue(
        "OPS-1",
        &req.summary,
        &["auto-created", "monitoring-alert"],
        true,
    ); // closed
    f.seed_issue(
        "OPS-2",
        "[ALERT] db-prod-02 - High CPU again",
        &["auto-created", "monitoring-alert"],
        false,
    );
    let client = jira_client(&f, "jira-token");
    // Only a closed issue and a different summary: a new issue.
    let first = client
        .open(&req, true, "2026-11-22T01:00:00Z")
        .await
        .unwrap();
    assert!(
        matches!(&first, JiraOutcome::Created { key, .. } if key == "OPS-3"),
        "{first:?}"
    );
    // Now OPS-3 is open with the same summary and labels: it gets a comment.
    let second = client
        .open(&req, true, "2026-11-22T01:05:00Z")
        .await
        .unwrap();
    assert_eq!(
        second,
        JiraOutcome::Commented {
            key: "OPS-3".into(),
            url: f.url("/browse/OPS-3")
        }
    );
    let issues = f.issues();
    assert_eq!(issues.len(), 3);
    let ops3 = issues.iter().find(|i| i.key == "OPS-3").unwrap();
    assert_eq!(ops3.comments.len(), 1);
    assert_eq!(
        ops3.comments[0]["content"][0]["content"][0]["text"],
        "Seen again at 2026-11-22T01:05:00Z."
    );
    f.assert_valid();
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_wrong_token_is_a_401_and_not_retried() {
    let f = Fixture::start(jira_vendor()).await;
    let err = jira_client(&f, "wrong")
        .create(&incident())
        .await
        .unwrap_err();
    let (kind, attempts, _) = delivery_error(err);
    assert_eq!((kind, attempts), (FailureKind::Status(401), 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_create_is_retried_after_429_but_not_after_500() {
    let f = Fixture::start(jira_vendor()).await;
    f.fail_next([Fault::RetryAfter(1)]);
    let client = jira_client(&f, "jira-token");
    let created = client.create(&incident()).await.unwrap();
    assert_eq!(created.key, "OPS-1");
    assert_eq!(f.requests().len(), 2);

    f.fail_next([Fault::Status(500)]);
    let err = client.create(&incident()).await.unwrap_err();
    let (kind, attempts, _) = delivery_error(err);
    assert_eq!((kind, attempts), (FailureKind::Status(500), 1));
    assert_eq!(
        f.requests().len(),
        3,
        "a 500 may have created the issue: no second POST"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_field_errors_are_reported() {
    let f = Fixture::start(jira_vendor()).await;
    let mut req = incident();
    req.priority = Some("Apocalyptic".into());
    let err = jira_client(&f, "jira-token")
        .create(&req)
        .await
        .unwrap_err();
    let (kind, _, text) = delivery_error(err);
    assert_eq!(kind, FailureKind::Status(400));
    assert!(text.contains("priority: Specify the Priority"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_dedupe_falls_back_to_the_older_search_endpoint() {
    let f = Fixture::start(jira_vendor()).await;
    f.legacy_search_only();
    let req = incident();
    f.seed_issue(
        "OPS-9",
        &req.summary,
        &["auto-created", "monitoring-alert"],
        false,
    );
    let out = jira_client(&f, "jira-token")
        .open(&req, true, "2026-11-22T01:00:00Z")
        .await
        .unwrap();
    assert_eq!(out.key(), "OPS-9");
    assert!(matches!(out, JiraOutcome::Commented { .. }));
    let paths: Vec<String> = f.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/rest/api/3/search/jql",
            "/rest/api/3/search",
            "/rest/api/3/issue/OPS-9/comment"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_create_is_not_retried_after_a_timeout() {
    let f = Fixture::start(jira_vendor()).await;
    f.fail_next([Fault::Hang(Duration::from_secs(10))]);
    let err = jira_client(&f, "jira-token")
        .create(&incident())
        .await
        .unwrap_err();
    let (kind, attempts, text) = delivery_error(err);
    assert_eq!((kind, attempts), (FailureKind::Timeout, 1), "{text}");
    assert_eq!(
        f.requests().len(),
        1,
        "a timed-out create may have worked: no second POST"
    );
}

/// A hostile endpoint that answers every request with `status` and a `Location` elsewhere.
async fn redirecting(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let hits = std::sync::Arc::new(AtomicU32::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            axum::response::Response::builder()
                .status(status)
                .header("location", "http://127.0.0.1:9/elsewhere")
                .body(axum::body::Body::empty())
                .unwrap()
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirected_alert_is_a_failed_delivery_not_a_success() {
    for status in [301u16, 302, 303, 307, 308] {
        let (base, hits) = redirecting(status).await;
        let url = SecretString::from(format!("{base}/services/T000/B000/XXXXSECRETXXXX"));
        let e = ChatSender::new(&fast(DeliveryOptions::slack()))
            .unwrap()
            .slack(&url, &alert())
            .await
            .unwrap_err();
        let (kind, _, text) = delivery_error(e);
        assert_eq!(kind, FailureKind::Status(status), "{text}");
        assert!(text.contains("NOT delivered"), "{text}");
        assert!(!text.contains("XXXXSECRETXXXX"), "{text}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        let signing = Signing::Standard {
            secrets: vec![WebhookSecret::generate()],
            id: None,
            timestamp: None,
        };
        let e = WebhookSender::new(&fast(DeliveryOptions::default()))
            .unwrap()
            .send(&format!("{base}/hooks/in"), b"{}".to_vec(), &signing, &[])
            .await
            .unwrap_err();
        let (kind, _, text) = delivery_error(e);
        assert_eq!(kind, FailureKind::Status(status), "{text}");
    }
}
