use std::time::Duration;

use opskit_http::{Client, RateLimit, WaitReason};
use tokio::time::Instant;

use crate::fixture::Fixture;
use crate::support::{config, observed};

#[tokio::test(start_paused = true)]
async fn quota_is_shared_by_all_tasks_per_host() {
    let fx = Fixture::start().await;
    let other = Fixture::start().await;
    let (client, rec) =
        observed(config(&fx.base()).rate_limit(RateLimit::per_interval(5, Duration::from_secs(1))));
    let start = Instant::now();
    let tasks: Vec<_> = (0..15)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("echo").send().await.map(|r| r.status()) })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_success());
    }
    // 5 at once, then one every 200 ms
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    assert!(
        rec.waits
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.reason == WaitReason::RateLimit)
    );

    // another host has its own quota: 5 requests go through without waiting
    let t0 = Instant::now();
    for _ in 0..5 {
        client.get(&other.url("/echo")).send().await.unwrap();
    }
    assert!(t0.elapsed() < Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn server_quota_at_zero_pauses_until_reset_instead_of_a_429() {
    let fx = Fixture::start().await;
    let (client, rec) = observed(config(&fx.base()));
    client.get("quota").send().await.unwrap();
    assert_eq!(*rec.low.lock().unwrap(), vec![0]);
    let start = Instant::now();
    client.get("quota").send().await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(7));
    let waits = rec.waits.lock().unwrap();
    assert!(
        waits
            .iter()
            .any(|w| w.reason == WaitReason::ServerQuota && w.wait <= Duration::from_secs(7))
    );
}

#[test]
fn a_zero_quota_is_a_config_error() {
    let err = Client::new(
        opskit_http::ClientConfig::default()
            .rate_limit(RateLimit::per_interval(0, Duration::from_secs(1))),
    )
    .unwrap_err();
    assert!(matches!(err, opskit_http::Error::Config { .. }));
}
