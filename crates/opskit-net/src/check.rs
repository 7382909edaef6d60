//! `check`: is each `host:port` accepting TCP connections right now? All targets concurrently,
//! each with one deadline covering name resolution and connecting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;

use crate::Error;
use crate::scan::{Attempt, attempt};
use crate::target::{Endpoint, resolve};

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// Something accepted the connection.
    Open,
    /// The host answered with a refusal (nothing listens), or the kernel connected the socket to
    /// itself (a self-connect: nothing listens either).
    Refused,
    /// No answer before the deadline.
    Timeout,
    /// The name did not resolve, or the host or network is unreachable.
    Unreachable,
    /// A local failure (e.g. out of file descriptors until the deadline): nothing is known about
    /// the target.
    Error,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Open => "open",
            CheckState::Refused => "refused",
            CheckState::Timeout => "timeout",
            CheckState::Unreachable => "unreachable",
            CheckState::Error => "error",
        }
    }
}

/// The result for one target.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The target as given (`host:port`).
    pub target: String,
    /// The address connected to (or last tried).
    pub addr: Option<SocketAddr>,
    pub state: CheckState,
    /// Time to connect (open) or to fail, in milliseconds.
    pub latency_ms: f64,
    /// Why it is not open, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Checks one endpoint: resolves it, then tries its addresses in order until one accepts, all
/// within `timeout`. Running out of file descriptors makes it wait and retry (until the deadline).
pub async fn check_one(endpoint: &Endpoint, timeout: Duration) -> CheckResult {
    let start = Instant::now();
    let deadline = start + timeout;
    let done = |addr, state, detail: Option<String>| CheckResult {
        target: endpoint.to_string(),
        addr,
        state,
        latency_ms: start.elapsed().as_secs_f64() * 1000.0,
        detail,
    };
    let addrs = match resolve(endpoint, timeout).await {
        Ok(a) => a,
        Err(Error::Timeout { .. }) => {
            return done(
                None,
                CheckState::Timeout,
                Some("name resolution timed out".into()),
            );
        }
        Err(e) => return done(None, CheckState::Unreachable, Some(e.to_string())),
    };
    let mut last: Option<(SocketAddr, CheckState, String)> = None;
    for addr in addrs {
        let mut backoff = Duration::from_millis(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let (state, detail) = match &last {
                    Some((a, s, d)) if *a == addr => (*s, d.clone()),
                    _ => (
                        CheckState::Timeout,
                        "no answer before the deadline".to_owned(),
                    ),
                };
                return done(Some(addr), state, Some(detail));
            }
            match attempt(addr, left).await {
                Attempt::Open(..) => return done(Some(addr), CheckState::Open, None),
                Attempt::Refused => {
                    last = Some((addr, CheckState::Refused, "connection refused".into()));
                }
                Attempt::SelfConnect => {
                    last = Some((
                        addr,
                        CheckState::Refused,
                        "nothing listens (the connect reached its own socket)".into(),
                    ));
                }
                Attempt::TimedOut => {
                    last = Some((
                        addr,
                        CheckState::Timeout,
                        "no answer before the deadline".into(),
                    ));
                }
                Attempt::Unreachable(e) => {
                    last = Some((addr, CheckState::Unreachable, e.to_string()));
                }
                Attempt::Exhausted(e) => {
                    last = Some((addr, CheckState::Error, format!("local resources: {e}")));
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                    continue;
                }
            }
            break;
        }
    }
    match last {
        Some((addr, state, detail)) => done(Some(addr), state, Some(detail)),
        None => done(None, CheckState::Unreachable, Some("no addresses".into())),
    }
}

/// Checks every endpoint concurrently (at most `concurrency` at once); results in input order.
pub async fn check_all(
    endpoints: &[Endpoint],
    timeout: Duration,
    concurrency: usize,
) -> Vec<CheckResult> {
    futures::stream::iter(endpoints.iter().map(|e| check_one(e, timeout)))
        .buffered(concurrency.max(1))
        .collect()
        .await
}
