use std::time::Duration;

use futures::StreamExt;
use opskit_http::{Client, ClientConfig, Error, RetryPolicy, TimeoutPhase, Timeouts};
use tokio::time::Instant;

use crate::fixture::Fixture;

#[test]
fn timeouts_are_on_by_default() {
    let t = ClientConfig::default().timeouts;
    assert_eq!(t.connect, Duration::from_secs(10));
    assert_eq!(t.request, Duration::from_secs(30));
    assert!(t.read_idle > Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_server_hits_the_default_request_deadline() {
    let fx = Fixture::start().await;
    let client = Client::new(ClientConfig::new(fx.base()).retry(RetryPolicy::none())).unwrap();
    let start = Instant::now();
    let err = client.get("stall").send().await.unwrap_err();
    match err {
        Error::Timeout { phase, after, .. } => {
            assert_eq!(phase, TimeoutPhase::Request);
            assert_eq!(after, Duration::from_secs(30));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert!(start.elapsed() < Duration::from_secs(31));
}

#[tokio::test(start_paused = true)]
async fn every_request_ends_by_its_deadline_even_with_retries() {
    let fx = Fixture::start().await;
    let cfg = ClientConfig::new(fx.base())
        .timeouts(Timeouts {
            request: Duration::from_secs(2),
            ..Timeouts::default()
        })
        .retry(
            RetryPolicy::default()
                .jitter(false)
                .budget(None)
                .backoff(Duration::from_millis(100), Duration::from_secs(1)),
        );
    let client = Client::new(cfg).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("stall").send().await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(matches!(err, Error::RetriesExhausted { attempts: 4, .. }));
    }
    // 4 attempts of 2 s plus 0.7 s of backoff
    assert!(start.elapsed() <= Duration::from_secs(9));
}

#[tokio::test(start_paused = true)]
async fn per_request_timeout_overrides_the_client_one() {
    let fx = Fixture::start().await;
    let client = Client::new(ClientConfig::new(fx.base()).retry(RetryPolicy::none())).unwrap();
    let err = client
        .get("stall")
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { phase: TimeoutPhase::Request, after, .. } if after == Duration::from_secs(3))
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_hits_the_read_idle_timeout() {
    let fx = Fixture::start().await;
    let cfg = ClientConfig::new(fx.base()).timeouts(Timeouts {
        read_idle: Duration::from_secs(5),
        ..Timeouts::default()
    });
    let client = Client::new(cfg).unwrap();
    let resp = client.get("stall-body").send().await.unwrap();
    let mut chunks = Box::pin(resp.chunks());
    let first = chunks.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first");
    let err = chunks.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::ReadIdle,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(chunks.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_buffered_body_read_is_bound_by_the_request_deadline() {
    let fx = Fixture::start().await;
    let cfg = ClientConfig::new(fx.base()).timeouts(Timeouts {
        request: Duration::from_secs(4),
        ..Timeouts::default()
    });
    let client = Client::new(cfg).unwrap();
    let resp = client.get("stall-body").send().await.unwrap();
    let err = resp.bytes().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Request,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_accepts_hits_the_connect_timeout() {
    // A listener with a backlog of 1 that never accepts: once its queue is full, the kernel
    // drops further SYNs, so a new connection hangs in the connect phase.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let cfg = ClientConfig::new(format!("http://{addr}/"))
        .timeouts(Timeouts {
            connect: Duration::from_millis(300),
            ..Timeouts::default()
        })
        .retry(RetryPolicy::none());
    let err = Client::new(cfg).unwrap().get("x").send().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    drop(listener);
}

#[tokio::test(start_paused = true)]
async fn the_retry_deadline_also_bounds_the_attempt_in_flight() {
    let fx = Fixture::start().await;
    let policy = RetryPolicy::default().deadline(Some(Duration::from_secs(5)));
    let client = Client::new(ClientConfig::new(fx.base()).retry(policy)).unwrap();
    let start = Instant::now();
    let err = client.get("stall").send().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::RetryDeadline,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() <= Duration::from_secs(5));
    assert_eq!(fx.state.count("stall"), 1);
}
