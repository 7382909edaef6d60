//! Issue 11, finding 3: slow and idle connections are cut off, and open connections are capped.
//! No storage is involved, so these run on SQLite only, with short configured timeouts.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, Options, TestApp};

async fn start(opts: Options) -> TestApp {
    TestApp::start(Backend::Sqlite, opts).await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or the deadline passes); what it sent.
async fn read_until_closed(sock: &mut TcpStream, deadline: Instant) -> Option<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&all).into_owned()),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client sending its headers one byte at a time is cut off by the header read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let app = start(Options {
        header_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(200)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    for b in request.bytes() {
        if sock.write_all(&[b]).await.is_err() {
            closed = true;
            break;
        }
        // the server closing shows as EOF on a read
        let mut buf = [0u8; 512];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(50), sock.read(&mut buf)).await {
            match r {
                Ok(0) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    assert!(!text.contains(" 200 "), "answered: {text}");
                }
            }
        }
        assert!(Instant::now() < deadline, "still connected after 10 s");
    }
    assert!(closed, "the whole slow request was read");
}

/// Silent connections are closed after the idle timeout, even with a long header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed() {
    let app = start(Options {
        header_timeout: Some(Duration::from_secs(60)),
        idle_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let mut socks = Vec::new();
    for _ in 0..50 {
        socks.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    // and one that made a request and then went quiet on a kept-alive connection
    let mut kept = TcpStream::connect(addr(&app)).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    socks.push(kept);
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, s) in socks.iter_mut().enumerate() {
        assert!(
            read_until_closed(s, deadline).await.is_some(),
            "connection {i} still open after 10 s"
        );
    }
}

/// Past --max-connections a new connection gets a 503 and is closed; once one closes, requests
/// are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503() {
    let app = start(Options {
        max_connections: Some(3),
        ..Default::default()
    })
    .await;
    // the test client's own pooled connection (from the admin login) holds one slot: drop it
    let mut app = app;
    app.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // wait until the login connection is gone and three silent ones are held
    let mut held = Vec::new();
    loop {
        held.clear();
        for _ in 0..3 {
            held.push(TcpStream::connect(addr(&app)).await.unwrap());
        }
        let mut extra = TcpStream::connect(addr(&app)).await.unwrap();
        extra
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let text = read_until_closed(&mut extra, deadline)
            .await
            .expect("an answer");
        if text.starts_with("HTTP/1.1 503") {
            assert!(text.contains("application/problem+json"), "{text}");
            assert!(text.to_lowercase().contains("retry-after: 1"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never refused: {text}");
    }
    drop(held.pop());
    loop {
        match app.req(Method::GET, "/health").send().await {
            Ok(r) if r.status() == 200 => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "a slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Timeouts and lifetimes are checked before the server starts.
#[tokio::test]
async fn out_of_range_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = opskit_server::ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("t.db").display()),
        ..Default::default()
    };
    let cases = [
        (
            "--refresh-token-ttl",
            opskit_server::ServerConfig {
                refresh_token_ttl: Duration::from_secs(999_999_999_999),
                ..base.clone()
            },
        ),
        (
            "--access-token-ttl",
            opskit_server::ServerConfig {
                access_token_ttl: Duration::ZERO,
                ..base.clone()
            },
        ),
        (
            "--header-timeout",
            opskit_server::ServerConfig {
                header_read_timeout: Duration::ZERO,
                ..base.clone()
            },
        ),
        (
            "--max-connections",
            opskit_server::ServerConfig {
                max_connections: 0,
                ..base.clone()
            },
        ),
    ];
    for (flag, config) in cases {
        match opskit_server::Application::build(config).await {
            Err(opskit_server::Error::Invalid(msg)) => assert!(msg.contains(flag), "{msg}"),
            Err(e) => panic!("{flag}: {e}"),
            Ok(_) => panic!("{flag}: accepted"),
        }
    }
}
