//! `wait`: wait until every target is ready, checking them in parallel.
//!
//! A target is `host:port` (ready when a TCP connection is accepted, a self-connect does not
//! count) or an `http://` / `https://` URL (ready when the response status is in the accepted
//! set, 2xx by default; requests go through `opskit-http` without retries: the polling is ours).

use std::fmt;
use std::time::{Duration, Instant};

use opskit_http::{Client, ClientConfig, RetryPolicy, Timeouts, Url};
use serde::Serialize;

use crate::scan::{Attempt, attempt};
use crate::target::{Endpoint, resolve};
use crate::{Error, Result};

/// Something to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitTarget {
    /// Ready when a TCP connection is accepted.
    Tcp(Endpoint),
    /// Ready when a GET answers with an accepted status.
    Http(Url),
}

impl fmt::Display for WaitTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitTarget::Tcp(e) => e.fmt(f),
            WaitTarget::Http(u) => f.write_str(&opskit_http::redact_url(u, &[])),
        }
    }
}

impl WaitTarget {
    /// Parses `host:port`, `[v6]:port`, or an `http(s)://` URL.
    pub fn parse(s: &str) -> Result<WaitTarget> {
        let lower = s.trim().to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url = Url::parse(s.trim()).map_err(|e| {
                Error::InvalidInput(format!(
                    "bad URL {s:?}: {e}; write it like http://127.0.0.1:8080/health"
                ))
            })?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(Error::InvalidInput(format!(
                    "bad URL {s:?}: it has no host"
                )));
            }
            return Ok(WaitTarget::Http(url));
        }
        if lower.contains("://") {
            return Err(Error::InvalidInput(format!(
                "bad target {s:?}: only host:port, http:// and https:// targets can be waited for"
            )));
        }
        Endpoint::parse(s).map(WaitTarget::Tcp)
    }
}

/// The HTTP statuses that count as ready: a list of codes, ranges and classes
/// (`2xx`, `200,204`, `200-399`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(lo, hi)| match (lo, hi) {
                (lo, hi) if lo == hi => lo.to_string(),
                (lo, hi) if lo % 100 == 0 && *hi == lo + 99 => format!("{}xx", lo / 100),
                (lo, hi) => format!("{lo}-{hi}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl StatusSet {
    /// Parses `2xx`, `200,204`, `200-399` or a mix of them.
    ///
    /// ```
    /// use opskit_net::wait::StatusSet;
    /// let s = StatusSet::parse("2xx,301-302,404").unwrap();
    /// assert!(s.contains(204) && s.contains(302) && s.contains(404) && !s.contains(500));
    /// assert!(StatusSet::parse("7xx").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<StatusSet> {
        let bad = |why: String| {
            Error::InvalidInput(format!(
                "bad status list {spec:?}: {why}; write codes, ranges or classes like 200,204 or 200-399 or 2xx"
            ))
        };
        let code = |s: &str| -> Result<u16> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| bad(format!("{s:?} is not an HTTP status (100-599)")))
        };
        let mut out = Vec::new();
        for part in spec.split(',') {
            let part = part.trim();
            let lower = part.to_ascii_lowercase();
            if let Some(class) = lower.strip_suffix("xx") {
                let c: u16 = class
                    .parse()
                    .ok()
                    .filter(|c| (1..=5).contains(c))
                    .ok_or_else(|| bad(format!("{part:?} is not a status class (1xx-5xx)")))?;
                out.push((c * 100, c * 100 + 99));
            } else if let Some((a, b)) = part.split_once('-') {
                let (lo, hi) = (code(a)?, code(b)?);
                if lo > hi {
                    return Err(bad(format!("the range {part} runs backwards")));
                }
                out.push((lo, hi));
            } else {
                let c = code(part)?;
                out.push((c, c));
            }
        }
        Ok(StatusSet(out))
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// How to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The overall deadline (default 60 s).
    pub timeout: Duration,
    /// Pause between two checks of a target that is not ready (default 1 s).
    pub interval: Duration,
    /// Deadline of one check (default 5 s, never past the overall deadline).
    pub attempt_timeout: Duration,
    /// HTTP statuses that count as ready (default 2xx).
    pub statuses: StatusSet,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(60),
            interval: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            statuses: StatusSet::default(),
        }
    }
}

/// Where one target stands.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// The target as given (URL credentials redacted).
    pub target: String,
    pub ready: bool,
    /// Checks made.
    pub attempts: u32,
    /// Time from the start until it was ready (or until we gave up), in seconds.
    pub elapsed_s: f64,
    /// Why the last check failed (absent once ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The outcome of a wait.
#[derive(Debug, Clone, Serialize)]
pub struct WaitReport {
    /// Every target was ready before the deadline.
    pub ready: bool,
    pub targets: Vec<TargetStatus>,
    pub elapsed_s: f64,
}

impl WaitReport {
    /// The targets that were not ready.
    pub fn not_ready(&self) -> impl Iterator<Item = &TargetStatus> {
        self.targets.iter().filter(|t| !t.ready)
    }
}

/// What happens while waiting, reported to the caller's callback.
#[derive(Debug, Clone, Copy)]
pub enum WaitEvent<'a> {
    /// A check of a target failed; another follows after the interval (if time is left).
    NotReady {
        target: &'a str,
        attempt: u32,
        error: &'a str,
    },
    /// A target became ready (reported once per target).
    Ready(&'a TargetStatus),
}

/// A callback for [`WaitEvent`]s.
pub type EventFn<'a> = &'a (dyn Fn(WaitEvent<'_>) + Sync);

/// Waits for every target in parallel, until all are ready or the deadline passes.
/// `on_event` hears every failed check and every target that becomes ready.
pub async fn wait_all(
    targets: &[WaitTarget],
    opts: &WaitOptions,
    on_event: Option<EventFn<'_>>,
) -> Result<WaitReport> {
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let client = if targets.iter().any(|t| matches!(t, WaitTarget::Http(_))) {
        let attempt = opts.attempt_timeout.min(opts.timeout);
        let cfg = ClientConfig {
            retry: RetryPolicy::none(),
            timeouts: Timeouts {
                connect: attempt,
                request: attempt,
                read_idle: attempt,
            },
            ..ClientConfig::default()
        };
        Some(Client::new(cfg)?)
    } else {
        None
    };
    let futures = targets.iter().map(|t| {
        let client = client.as_ref();
        async move {
            let status = wait_one(t, client, opts, start, deadline, on_event).await;
            if status.ready
                && let Some(cb) = on_event
            {
                cb(WaitEvent::Ready(&status));
            }
            status
        }
    });
    let statuses = futures::future::join_all(futures).await;
    Ok(WaitReport {
        ready: statuses.iter().all(|s| s.ready),
        targets: statuses,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

async fn wait_one(
    target: &WaitTarget,
    client: Option<&Client>,
    opts: &WaitOptions,
    start: Instant,
    deadline: Instant,
    on_event: Option<EventFn<'_>>,
) -> TargetStatus {
    let name = target.to_string();
    let mut attempts = 0u32;
    let mut last_error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        attempts += 1;
        let budget = opts.attempt_timeout.min(left);
        let outcome = match target {
            WaitTarget::Tcp(ep) => check_tcp(ep, budget).await,
            WaitTarget::Http(url) => match client {
                Some(c) => check_http(c, url, &opts.statuses, budget).await,
                None => Err("no HTTP client".to_owned()),
            },
        };
        match outcome {
            Ok(()) => {
                return TargetStatus {
                    target: name,
                    ready: true,
                    attempts,
                    elapsed_s: start.elapsed().as_secs_f64(),
                    last_error: None,
                };
            }
            Err(e) => {
                if let Some(cb) = on_event {
                    cb(WaitEvent::NotReady {
                        target: &name,
                        attempt: attempts,
                        error: &e,
                    });
                }
                last_error = Some(e);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(opts.interval.min(left)).await;
    }
    TargetStatus {
        target: name,
        ready: false,
        attempts,
        elapsed_s: start.elapsed().as_secs_f64(),
        last_error: Some(last_error.unwrap_or_else(|| "not checked before the deadline".into())),
    }
}

async fn check_tcp(ep: &Endpoint, budget: Duration) -> std::result::Result<(), String> {
    let start = Instant::now();
    let addrs = resolve(ep, budget).await.map_err(|e| e.to_string())?;
    let mut last = String::from("no addresses");
    // Name the address only when the target is a name (it may have several).
    let named = ep.ip().is_none();
    for addr in addrs {
        let at = if named {
            format!(" ({addr})")
        } else {
            String::new()
        };
        let left = budget.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match attempt(addr, left).await {
            Attempt::Open(..) => return Ok(()),
            Attempt::Refused => last = format!("connection refused{at}"),
            Attempt::SelfConnect => last = format!("nothing listens (self-connect){at}"),
            Attempt::TimedOut => last = format!("no answer within {left:?}{at}"),
            Attempt::Unreachable(e) | Attempt::Exhausted(e) => last = format!("{e}{at}"),
        }
    }
    Err(last)
}

async fn check_http(
    client: &Client,
    url: &Url,
    statuses: &StatusSet,
    budget: Duration,
) -> std::result::Result<(), String> {
    let send = client.get(url.as_str()).timeout(budget).send();
    match tokio::time::timeout(budget, send).await {
        Err(_) => Err(format!("no response within {budget:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            if statuses.contains(status) {
                Ok(())
            } else {
                Err(format!("HTTP {status} (waiting for {statuses})"))
            }
        }
    }
}
