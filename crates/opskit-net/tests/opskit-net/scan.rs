//! Scans against listeners the test opens: the open set must be exact, every time.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opskit_net::scan::{Attempt, PortState, ScanOptions, attempt_with, scan};
use opskit_net::target::{HostSpec, ScanHost, expand_hosts, parse_ports};
use tokio::net::TcpSocket;

use crate::support::{
    ListenWatch, assert_no_false_positive, listener, listener_at, private_loopback,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn localhost() -> Vec<ScanHost> {
    vec![ScanHost {
        label: "127.0.0.1".into(),
        ip: LOCALHOST,
    }]
}

/// The ports around each listener (they sit in the ephemeral range, where self-connects happen).
fn ports_around(open: &[u16], width: u16) -> Vec<u16> {
    let spec: Vec<String> = open
        .iter()
        .map(|p| {
            format!(
                "{}-{}",
                p.saturating_sub(width).max(1),
                p.saturating_add(width)
            )
        })
        .collect();
    parse_ports(&spec.join(",")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_scans_find_exactly_the_listeners() {
    // On an address of its own: other tests' short-lived listeners on 127.0.0.1 (which a poll
    // of /proc can miss) cannot answer there.
    let ip = private_loopback();
    let listeners = [
        listener_at(ip).await,
        listener_at(ip).await,
        listener_at(ip).await,
        listener_at(ip).await,
    ];
    let expected: BTreeSet<u16> = listeners.iter().map(|l| l.port).collect();
    let ports = ports_around(&expected.iter().copied().collect::<Vec<_>>(), 400);
    let mut self_connects = 0;
    let host = vec![ScanHost {
        label: ip.to_string(),
        ip: IpAddr::V4(ip),
    }];
    for _round in 0..20 {
        let watch = ListenWatch::start_on(ip);
        let report = scan(host.clone(), ports.clone(), ScanOptions::default(), None)
            .await
            .unwrap();
        let seen = watch.stop();
        let open: BTreeSet<u16> = report.ports.iter().map(|p| p.port).collect();
        assert_no_false_positive(&open, &expected, &seen);
        assert!(report.ports.iter().all(|p| p.state == PortState::Open));
        assert_eq!(report.open as usize, open.len());
        assert_eq!(
            report.open + report.closed + report.filtered,
            ports.len() as u64
        );
        assert_eq!(report.filtered, 0, "nothing is filtered on loopback");
        self_connects += report.self_connects;
    }
    eprintln!("self-connects seen and counted closed: {self_connects}");
}

#[tokio::test]
async fn a_self_connect_is_not_an_open_port() {
    // Bind a socket to a free port and connect it to that same port: the kernel joins the socket
    // to itself (TCP simultaneous open). Nothing listens there, so it must not count as open.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let outcome = attempt_with(socket, addr, Duration::from_secs(5)).await;
    assert!(
        matches!(outcome, Attempt::SelfConnect),
        "expected a self-connect, got {outcome:?}"
    );
}

#[tokio::test]
async fn keep_all_reports_every_port_with_its_state_and_service() {
    let l = listener().await;
    let ports = ports_around(&[l.port], 20);
    let opts = ScanOptions {
        keep_all: true,
        ..ScanOptions::default()
    };
    let done = Arc::new(AtomicU64::new(0));
    let progressed = done.clone();
    let progress = Arc::new(move |p: opskit_net::scan::Progress| {
        progressed.fetch_max(p.done, Ordering::Relaxed);
        assert!(p.done <= p.total);
    });
    let watch = ListenWatch::start();
    let report = scan(localhost(), ports.clone(), opts, Some(progress))
        .await
        .unwrap();
    let seen = watch.stop();
    assert_eq!(done.load(Ordering::Relaxed), ports.len() as u64);
    assert_eq!(report.ports.len(), ports.len());
    let got: Vec<u16> = report.ports.iter().map(|p| p.port).collect();
    assert_eq!(got, ports, "sorted by port");
    for p in &report.ports {
        if p.port == l.port {
            assert_eq!(p.state, PortState::Open);
        } else if !seen.contains(&p.port) {
            assert_eq!(p.state, PortState::Closed, "port {}", p.port);
        }
    }
    let json = serde_json::to_value(&report.ports[0]).unwrap();
    for key in ["host", "port", "state", "service"] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
}

#[tokio::test]
async fn a_small_concurrency_still_gives_the_exact_set() {
    let a = listener().await;
    let b = listener().await;
    let ports = ports_around(&[a.port, b.port], 50);
    let opts = ScanOptions {
        concurrency: Some(3),
        ..ScanOptions::default()
    };
    let watch = ListenWatch::start();
    let report = scan(localhost(), ports, opts, None).await.unwrap();
    let seen = watch.stop();
    let open: BTreeSet<u16> = report.ports.iter().map(|p| p.port).collect();
    assert_no_false_positive(&open, &BTreeSet::from([a.port, b.port]), &seen);
    assert_eq!(report.concurrency, 3);
}

#[tokio::test]
async fn several_hosts_from_a_cidr_block_are_reported_host_by_host() {
    // 127.0.0.0/30 is all loopback; the listener is on 127.0.0.1 only.
    let l = listener().await;
    let hosts = expand_hosts(
        &[HostSpec::parse("127.0.0.0/30").unwrap()],
        16,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let ports = ports_around(&[l.port], 5);
    let opts = ScanOptions {
        keep_all: true,
        timeout: Duration::from_secs(2),
        ..ScanOptions::default()
    };
    let watch = ListenWatch::start();
    let report = scan(hosts, ports.clone(), opts, None).await.unwrap();
    let seen = watch.stop();
    assert_eq!(report.ports.len(), 4 * ports.len());
    let open: Vec<(String, u16)> = report
        .ports
        .iter()
        .filter(|p| p.state == PortState::Open && !seen.contains(&p.port))
        .map(|p| (p.host.clone(), p.port))
        .collect();
    assert!(open.is_empty(), "open without a listener: {open:?}");
    let state_of = |host: &str| {
        report
            .ports
            .iter()
            .find(|p| p.host == host && p.port == l.port)
            .map(|p| p.state)
    };
    assert_eq!(state_of("127.0.0.1"), Some(PortState::Open));
    // The listener is bound to 127.0.0.1 only.
    assert_eq!(state_of("127.0.0.2"), Some(PortState::Closed));
    let order: Vec<&str> = report.ports.iter().map(|p| p.host.as_str()).collect();
    let mut sorted = order.clone();
    sorted.sort_by_key(|h| h.parse::<Ipv4Addr>().unwrap());
    assert_eq!(order, sorted);
}

#[tokio::test]
async fn a_port_that_never_answers_is_filtered_not_closed() {
    // A listener with a backlog of 0 whose queue is already full: the kernel drops new SYNs.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let _listener = socket.listen(0).unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(Ok(c)) => held.push(c),
            _ => break,
        }
    }
    let opts = ScanOptions {
        timeout: Duration::from_millis(200),
        retries: 1,
        keep_all: true,
        ..ScanOptions::default()
    };
    let report = scan(localhost(), vec![port], opts, None).await.unwrap();
    assert_eq!(report.ports[0].state, PortState::Filtered);
    assert_eq!(report.filtered, 1);
}
