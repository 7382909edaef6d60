//! Helpers shared by the tests: loopback listeners that keep accepting, the DNS test server.

use std::net::SocketAddr;

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
