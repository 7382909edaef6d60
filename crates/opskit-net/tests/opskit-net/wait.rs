//! `wait` for TCP and HTTP targets that appear late, and for one that never does.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use opskit_net::wait::{StatusSet, WaitEvent, WaitOptions, WaitTarget, wait_all};
use tokio::sync::mpsc;

use crate::support::{from_listener, reserved_port};

fn opts(timeout_ms: u64) -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_millis(timeout_ms),
        interval: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(2),
        statuses: StatusSet::default(),
    }
}

#[tokio::test]
async fn waits_for_a_tcp_listener_that_appears_after_the_first_check() {
    let (socket, port) = reserved_port();
    let target = WaitTarget::parse(&format!("127.0.0.1:{port}")).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let tx = Mutex::new(tx);
    let on_event = move |e: WaitEvent<'_>| {
        if let WaitEvent::NotReady { error, .. } = e {
            let _ = tx.lock().unwrap().send(error.to_owned());
        }
    };
    let opts = opts(30_000);
    let waiting = wait_all(std::slice::from_ref(&target), &opts, Some(&on_event));
    let opener = async {
        let first_error = rx.recv().await.unwrap();
        assert!(first_error.contains("refused"), "{first_error}");
        from_listener(socket.listen(128).unwrap())
    };
    let (report, _listener) = tokio::join!(waiting, opener);
    let report = report.unwrap();
    assert!(report.ready);
    assert!(report.targets[0].ready);
    assert!(report.targets[0].attempts >= 2);
}

#[tokio::test]
async fn reports_the_target_that_never_appears() {
    let (_hold, port) = reserved_port();
    let l = crate::support::listener().await;
    let targets = [
        WaitTarget::parse(&format!("127.0.0.1:{}", l.port)).unwrap(),
        WaitTarget::parse(&format!("127.0.0.1:{port}")).unwrap(),
    ];
    let report = wait_all(&targets, &opts(300), None).await.unwrap();
    assert!(!report.ready);
    let not_ready: Vec<&str> = report.not_ready().map(|t| t.target.as_str()).collect();
    assert_eq!(not_ready, vec![format!("127.0.0.1:{port}").as_str()]);
    let last = report.targets[1].last_error.as_deref().unwrap();
    assert!(last.contains("refused"), "{last}");
}

/// An HTTP server that answers 503 to the first `n` requests and 200 afterwards.
async fn flapping_server(n: usize) -> (String, tokio::task::JoinHandle<()>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let hits = hits.clone();
            async move {
                if hits.fetch_add(1, Ordering::SeqCst) < n {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/health", l.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn waits_for_an_http_2xx_after_503s() {
    let (url, _server) = flapping_server(3).await;
    let report = wait_all(&[WaitTarget::parse(&url).unwrap()], &opts(30_000), None)
        .await
        .unwrap();
    assert!(report.ready);
    assert_eq!(report.targets[0].attempts, 4);
}

#[tokio::test]
async fn status_changes_what_counts_as_ready() {
    let (url, _server) = flapping_server(usize::MAX).await;
    let target = [WaitTarget::parse(&url).unwrap()];
    let report = wait_all(&target, &opts(300), None).await.unwrap();
    assert!(!report.ready);
    let last = report.targets[0].last_error.as_deref().unwrap();
    assert!(last.contains("503"), "{last}");
    let mut o = opts(30_000);
    o.statuses = StatusSet::parse("503").unwrap();
    assert!(wait_all(&target, &o, None).await.unwrap().ready);
}

#[test]
fn bad_targets_say_what_to_write() {
    for bad in ["ftp://x", "nohost", "http://"] {
        let err = WaitTarget::parse(bad).unwrap_err().to_string();
        assert!(!err.is_empty(), "{bad}");
    }
}
