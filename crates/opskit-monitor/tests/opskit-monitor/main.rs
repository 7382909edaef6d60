//! Integration tests of the monitor engine: every check kind against fixtures the test controls
//! (HTTP service, TLS port with an expiring self-signed certificate, closed port, dnsmasq and sshd
//! from the test services), the alert state machine on SQLite and PostgreSQL, and delivery to
//! fixture servers that check each vendor's format.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

mod checks;
mod delivery;
mod lease;
mod query;
mod service;
mod state;
mod tls;

/// Generates `<name>::sqlite` and `<name>::postgres` tests from one async scenario taking a
/// [`support::Backend`].
#[macro_export]
macro_rules! both {
    ($module:ident :: $name:ident) => {
        pub mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::$module::$name($crate::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::support::pg_url().is_none() {
                    return;
                }
                $crate::$module::$name($crate::support::Backend::Postgres).await;
            }
        }
    };
}

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{var} is not set (CI=true): run the tests through scripts/test");
            }
            eprintln!("skipped: {var} is not set (run scripts/test to start the test services)");
            None
        }
    }
}

/// dnsmasq of the test services.
pub fn dns_server() -> Option<String> {
    required("OPSKIT_TEST_DNS_SERVER")
}

/// sshd of the test services.
pub struct Sshd {
    pub port: u16,
    pub user: String,
    pub key: String,
    pub host_pub: String,
}

pub fn sshd() -> Option<Sshd> {
    Some(Sshd {
        port: required("OPSKIT_TEST_SSHD_PORT")?.parse().ok()?,
        user: required("OPSKIT_TEST_SSH_USER")?,
        key: required("OPSKIT_TEST_SSH_KEY")?,
        host_pub: required("OPSKIT_TEST_SSHD_HOST_PUB")?,
    })
}
