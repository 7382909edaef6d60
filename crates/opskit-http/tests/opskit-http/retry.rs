use std::time::Duration;

use opskit_http::{Client, Error, Method, RetryBudget, RetryPolicy, StatusCode, WaitReason};
use tokio::time::Instant;

use crate::fixture::Fixture;
use crate::support::{config, observed};

#[tokio::test(start_paused = true)]
async fn fails_three_times_then_succeeds_with_exponential_backoff() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(config(&fx.base()));
    let start = Instant::now();
    let resp = client.get("fail/3").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.attempts(), 4);
    assert_eq!(fx.state.count("fail/3"), 4);
    assert_eq!(
        rec.retry_waits(),
        vec![
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_millis(400)
        ]
    );
    assert!(start.elapsed() >= Duration::from_millis(700));
    let waits = rec.waits.lock().unwrap();
    assert!(
        matches!(&waits[0].reason, WaitReason::Retry { retry: 1, cause, retry_after: false } if cause.contains("503"))
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_total_with_attempt_count_and_last_error() {
    let fx = Fixture::start().await;
    let (client, _) = observed(config(&fx.base()));
    let err = client.get("fail/10").send().await.unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 4);
            assert_eq!(last.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fx.state.count("fail/10"), 4);
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_stays_within_half_and_full_wait() {
    let fx = Fixture::start().await;
    let cfg = config(&fx.base()).retry(
        RetryPolicy::default()
            .backoff(Duration::from_secs(1), Duration::from_secs(3))
            .total(4),
    );
    let (client, rec) = observed(cfg);
    client.get("fail/4").send().await.unwrap();
    let waits = rec.retry_waits();
    let caps = [1, 2, 3, 3];
    for (w, cap) in waits.iter().zip(caps) {
        let cap = Duration::from_secs(cap);
        assert!(
            *w >= cap / 2 && *w <= cap,
            "wait {w:?} outside [{:?}, {cap:?}]",
            cap / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn separate_status_budget_limits_status_retries() {
    let fx = Fixture::start().await;
    let mut policy = RetryPolicy::default().jitter(false).total(5);
    policy.status = Some(1);
    let client = Client::new(config(&fx.base()).retry(policy)).unwrap();
    let err = client.get("fail/10").send().await.unwrap_err();
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn post_is_never_repeated_without_opt_in() {
    let fx = Fixture::start().await;
    let (client, _) = observed(config(&fx.base()));
    let resp = client
        .post("fail/2")
        .json(&serde_json::json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let hits = fx.state.hits("/fail/2");
    assert_eq!(hits.len(), 1);
    assert!(hits[0].headers.get("idempotency-key").is_none());
    assert_eq!(hits[0].method, "POST");
    // PATCH likewise
    let resp = client.patch("fail/5").body("x").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fx.state.count("fail/5"), 1);
}

#[tokio::test(start_paused = true)]
async fn opted_in_post_retries_carry_one_and_the_same_idempotency_key() {
    let fx = Fixture::start().await;
    let (client, _) = observed(config(&fx.base()));
    let resp = client
        .post("fail/2")
        .json(&serde_json::json!({"a": 1}))
        .retry_non_idempotent(true)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let hits = fx.state.hits("/fail/2");
    assert_eq!(hits.len(), 3);
    let keys: Vec<_> = hits
        .iter()
        .map(|h| h.headers.get("idempotency-key").cloned().unwrap())
        .collect();
    assert!(!keys[0].is_empty());
    assert!(keys.iter().all(|k| *k == keys[0]));

    // a second request gets a different key; a user key is used as given
    let policy = RetryPolicy::default()
        .jitter(false)
        .retry_non_idempotent(true);
    let client = Client::new(config(&fx.base()).retry(policy)).unwrap();
    client
        .post("fail/3")
        .idempotency_key("order-42")
        .send()
        .await
        .unwrap();
    let hits = fx.state.hits("/fail/3");
    assert_eq!(hits.len(), 4);
    assert!(
        hits.iter()
            .all(|h| h.headers.get("idempotency-key").unwrap() == "order-42")
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_honoured() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(config(&fx.base()));
    let start = Instant::now();
    client
        .get("retry-after/secs/7")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .await
        .unwrap();
    assert_eq!(rec.retry_waits(), vec![Duration::from_secs(7)]);
    assert!(start.elapsed() >= Duration::from_secs(7));
    let w = rec.waits.lock().unwrap();
    assert!(matches!(
        w[0].reason,
        WaitReason::Retry {
            retry_after: true,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(config(&fx.base()));
    client
        .get("retry-after/date/30")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .await
        .unwrap();
    let w = rec.retry_waits();
    assert_eq!(w.len(), 1);
    assert!(
        w[0] >= Duration::from_secs(27) && w[0] <= Duration::from_secs(30),
        "{w:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped() {
    let fx = Fixture::start().await;
    let mut policy = RetryPolicy::default().jitter(false);
    policy.retry_after_max = Duration::from_secs(60);
    let (client, rec) = observed(config(&fx.base()).retry(policy));
    client.get("retry-after/secs/86400").send().await.unwrap();
    assert_eq!(rec.retry_waits(), vec![Duration::from_secs(60)]);
}

#[tokio::test(start_paused = true)]
async fn unparseable_retry_after_is_treated_as_absent() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(config(&fx.base()));
    let resp = client.get("retry-after/garbage").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(rec.retry_waits(), vec![Duration::from_millis(100)]);
}

#[tokio::test(start_paused = true)]
async fn overall_retry_deadline_stops_retrying() {
    let fx = Fixture::start().await;
    let policy = RetryPolicy::default()
        .jitter(false)
        .total(50)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .deadline(Some(Duration::from_secs(2)));
    let client = Client::new(config(&fx.base()).retry(policy)).unwrap();
    let start = Instant::now();
    let err = client.get("fail/1000").send().await.unwrap_err();
    assert!(matches!(err, Error::RetriesExhausted { .. }), "{err:?}");
    assert!(start.elapsed() <= Duration::from_secs(2));
    assert!(fx.state.count("fail/1000") < 10);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_prevents_a_retry_storm() {
    let fx = Fixture::start().await;
    let policy = RetryPolicy::default()
        .jitter(false)
        .budget(Some(RetryBudget::new(0.0, 3)));
    let client = Client::new(config(&fx.base()).retry(policy)).unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("fail/100000").send().await })
        })
        .collect();
    for t in tasks {
        let _ = t.await.unwrap();
    }
    // 20 first attempts, and only the 3 retries the budget allows (without it: 80 requests)
    assert_eq!(fx.state.count("fail/100000"), 23);
}

#[tokio::test(start_paused = true)]
async fn connect_failures_are_retried_for_any_method() {
    let port = closed_port().await;
    let (client, rec) = observed(config(&format!("http://127.0.0.1:{port}/")));
    let err = client.post("x").body("payload").send().await.unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts: 4, last } => {
            assert!(matches!(**last, Error::Connect { .. }), "{last:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(rec.retry_waits().len(), 3);
}

#[tokio::test]
async fn read_failures_are_retried_only_for_idempotent_methods() {
    // a server that accepts and closes every connection before answering
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                drop(s);
            });
        }
    });
    let policy = RetryPolicy::default()
        .jitter(false)
        .backoff(Duration::from_millis(1), Duration::from_millis(5));
    let client = Client::new(config(&format!("http://127.0.0.1:{port}/")).retry(policy)).unwrap();
    let err = client.get("x").send().await.unwrap_err();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts: 4, last } if matches!(**last, Error::Transport { .. })),
        "{err:?}"
    );
    let before = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, 4);
    let err = client
        .request(Method::POST, "x")
        .body("once")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
}

#[tokio::test(start_paused = true)]
async fn buffered_and_file_bodies_are_replayed_streams_are_refused() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload.json");
    std::fs::write(&path, b"{\"from\":\"file\"}").unwrap();
    let client = Client::new(config(&fx.base())).unwrap();
    let resp = client.put("fail/2").body_file(&path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(fx.state.count("fail/2"), 3);

    let stream: opskit_http::BodyStream = Box::pin(futures::stream::iter(vec![Ok(
        bytes::Bytes::from_static(b"chunk"),
    )]));
    let err = client
        .put("fail/1")
        .body_stream(stream)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BodyNotReplayable { .. }), "{err:?}");
    assert!(err.to_string().contains("body_file"));
}

pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}

#[tokio::test(start_paused = true)]
async fn without_raise_on_status_the_last_retried_response_is_returned_whole() {
    let fx = Fixture::start().await;
    let policy = RetryPolicy::default()
        .jitter(false)
        .backoff(Duration::from_millis(100), Duration::from_secs(10))
        .raise_on_status(false);
    let client = Client::new(config(&fx.base()).retry(policy)).unwrap();
    let resp = client.get("fail/10").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.attempts(), 4);
    assert_eq!(fx.state.count("fail/10"), 4);
    assert_eq!(resp.text().await.unwrap(), "try later");
    // connection failures are still errors
    let port = closed_port().await;
    let client = Client::new(
        opskit_http::ClientConfig::new(format!("http://127.0.0.1:{port}/")).retry(
            RetryPolicy::default()
                .total(1)
                .jitter(false)
                .raise_on_status(false),
        ),
    )
    .unwrap();
    let err = client.get("x").send().await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
}
