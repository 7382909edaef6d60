//! Helpers shared by the tests: loopback listeners that keep accepting, the DNS test server.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket};

/// A listener on a random 127.0.0.1 port that accepts (and drops) connections until dropped.
pub struct Listener {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn listener() -> Listener {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    from_listener(l)
}

/// A listener on `ip` (a loopback address of the test's own, where no other test listens).
pub async fn listener_at(ip: std::net::Ipv4Addr) -> Listener {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    from_listener(l)
}

/// A loopback address of this test run's own (127.x.y.z, not 127.0.0.1): only wildcard
/// listeners of other processes can answer there, so a scan of it sees little but ours.
pub fn private_loopback() -> std::net::Ipv4Addr {
    let n = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    std::net::Ipv4Addr::new(
        127,
        100 + (n % 100) as u8,
        (n >> 8) as u8,
        1 + (n >> 16) as u8 % 250,
    )
}

pub fn from_listener(l: TcpListener) -> Listener {
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }
    });
    Listener { port, task }
}

/// A socket bound to a random 127.0.0.1 port but not listening: connects to it are refused until
/// `listen` is called on it. Holds the port so nobody else takes it.
pub fn reserved_port() -> (TcpSocket, u16) {
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// The DNS server the tests query (dnsmasq started by scripts/services/dnsmasq.sh). Without it
/// the DNS tests skip, except under CI=true where they fail.
pub fn dns_server() -> Option<SocketAddr> {
    match std::env::var("OPSKIT_TEST_DNS_SERVER") {
        Ok(v) => Some(v.parse().expect("OPSKIT_TEST_DNS_SERVER must be IP:PORT")),
        Err(_) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "OPSKIT_TEST_DNS_SERVER is not set (CI=true): run the tests through scripts/test"
                );
            }
            eprintln!(
                "skipped: OPSKIT_TEST_DNS_SERVER is not set (run scripts/test to start dnsmasq)"
            );
            None
        }
    }
}

/// Ports in LISTEN state that a connect to 127.0.0.1 can reach (bound to 127.0.0.1, 0.0.0.0,
/// :: or ::ffff:127.0.0.1), seen by polling /proc/net/tcp and tcp6 every millisecond in a
/// background thread while a scan runs. Other tests (of this and other crates) open listeners at
/// random times; a scan that reports one of those is right, not a false positive.
pub struct ListenWatch {
    ip: std::net::Ipv4Addr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<u16>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ListenWatch {
    pub fn start() -> ListenWatch {
        ListenWatch::start_on(std::net::Ipv4Addr::LOCALHOST)
    }

    /// Watches the ports reachable on `ip` (its own listeners and wildcard ones).
    pub fn start_on(ip: std::net::Ipv4Addr) -> ListenWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(listening_ports(ip)));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let now = listening_ports(ip);
                s.lock().unwrap().extend(now);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        ListenWatch {
            ip,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops polling; every port seen listening since `start`.
    pub fn stop(mut self) -> BTreeSet<u16> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let mut seen = self.seen.lock().unwrap().clone();
        seen.extend(listening_ports(self.ip));
        seen
    }
}

/// The ports listening on `ip` or on every address.
fn listening_ports(ip: std::net::Ipv4Addr) -> BTreeSet<u16> {
    // /proc/net/tcp shows the address as the little-endian hex of the 32-bit word.
    let hex = format!("{:08X}", u32::from_le_bytes(ip.octets()));
    let mut out = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "0A" {
                continue;
            }
            let Some((addr, port)) = f[1].split_once(':') else {
                continue;
            };
            let reachable = addr.chars().all(|c| c == '0') || addr.ends_with(&hex);
            if let (true, Ok(p)) = (reachable, u16::from_str_radix(port, 16)) {
                out.insert(p);
            }
        }
    }
    out
}

/// Asserts that a scan's open ports are ours plus only ports someone really listened on.
pub fn assert_no_false_positive(open: &BTreeSet<u16>, ours: &BTreeSet<u16>, seen: &BTreeSet<u16>) {
    let missed: Vec<&u16> = ours.difference(open).collect();
    assert!(
        missed.is_empty(),
        "listeners not found: {missed:?} (open: {open:?})"
    );
    let false_positives: Vec<&u16> = open
        .difference(ours)
        .filter(|p| !seen.contains(p))
        .collect();
    assert!(
        false_positives.is_empty(),
        "reported open but nothing listened there: {false_positives:?}"
    );
}
