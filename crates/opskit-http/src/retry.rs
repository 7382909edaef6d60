//! Retries with urllib3 semantics, and better: separate budgets, `Retry-After`, a deadline,
//! a retry budget against storms, and safe opt-in retries of POST/PATCH.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};

/// When and how failed attempts are retried.
///
/// ```
/// use std::time::Duration;
/// use opskit_http::RetryPolicy;
/// // urllib3's Retry(total=5, backoff_factor=0.5, status_forcelist=[502, 503])
/// let p = RetryPolicy::default()
///     .total(5)
///     .backoff(Duration::from_millis(500), Duration::from_secs(30))
///     .statuses([502, 503]);
/// assert_eq!(p.total, 5);
/// assert!(!p.retry_non_idempotent); // POST/PATCH are never retried unless you opt in
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Maximum retries of any kind (0 = never retry).
    pub total: u32,
    /// Maximum retries after connect failures (`None` = bounded by `total` only).
    pub connect: Option<u32>,
    /// Maximum retries after read failures: timeouts, resets (`None` = `total` only).
    pub read: Option<u32>,
    /// Maximum retries after a retryable status (`None` = `total` only).
    pub status: Option<u32>,
    /// Statuses that are retried (default 408, 429, 500, 502, 503, 504).
    pub statuses: Vec<u16>,
    /// Methods retried on read errors and statuses (default GET, HEAD, PUT, DELETE, OPTIONS,
    /// TRACE). Connect failures are retried for any method: nothing was sent.
    pub methods: Vec<Method>,
    /// Also retry POST and PATCH; every attempt then carries the same `Idempotency-Key`.
    pub retry_non_idempotent: bool,
    /// Backoff before retry n is `factor * 2^(n-1)`, capped at `backoff_max`.
    pub backoff_factor: Duration,
    /// Cap of one backoff wait.
    pub backoff_max: Duration,
    /// Randomise each backoff wait between half and all of it.
    pub jitter: bool,
    /// Honour the server's `Retry-After` (seconds or HTTP-date).
    pub respect_retry_after: bool,
    /// Longest `Retry-After` honoured; longer values are cut to this (default 5 minutes).
    pub retry_after_max: Duration,
    /// Give up when the next attempt would start later than this after the first one.
    pub deadline: Option<Duration>,
    /// Shared budget limiting retries to a share of requests (`None` = unlimited).
    pub budget: Option<RetryBudget>,
    /// After the last retry of a retryable status, fail with [`crate::Error::RetriesExhausted`]
    /// (the default, urllib3's `raise_on_status=True`); when off, the last response is returned
    /// as it is, body and all ([`crate::Response::attempts`] says how many were made).
    pub raise_on_status: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            total: 3,
            connect: None,
            read: None,
            status: None,
            statuses: vec![408, 429, 500, 502, 503, 504],
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
                Method::TRACE,
            ],
            retry_non_idempotent: false,
            backoff_factor: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            jitter: true,
            respect_retry_after: true,
            retry_after_max: Duration::from_secs(300),
            deadline: Some(Duration::from_secs(120)),
            budget: Some(RetryBudget::default()),
            raise_on_status: true,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            total: 0,
            ..RetryPolicy::default()
        }
    }
    /// Set the total number of retries.
    pub fn total(mut self, n: u32) -> Self {
        self.total = n;
        self
    }
    /// Set the backoff factor and cap.
    pub fn backoff(mut self, factor: Duration, max: Duration) -> Self {
        self.backoff_factor = factor;
        self.backoff_max = max;
        self
    }
    /// Set the retryable statuses.
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }
    /// Opt in to retrying POST and PATCH (with one `Idempotency-Key` on every attempt).
    pub fn retry_non_idempotent(mut self, on: bool) -> Self {
        self.retry_non_idempotent = on;
        self
    }
    /// Set the overall retry deadline.
    pub fn deadline(mut self, d: Option<Duration>) -> Self {
        self.deadline = d;
        self
    }
    /// Set the retry budget.
    pub fn budget(mut self, b: Option<RetryBudget>) -> Self {
        self.budget = b;
        self
    }
    /// Turn jitter on or off.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }
    /// Whether a status still retryable after the last retry is an error (default) or the
    /// returned response (see [`RetryPolicy::raise_on_status`]).
    pub fn raise_on_status(mut self, on: bool) -> Self {
        self.raise_on_status = on;
        self
    }

    /// Whether `method` may be retried after the request was (maybe) sent.
    pub(crate) fn method_allowed(&self, method: &Method, opt_in: bool) -> bool {
        if self.methods.contains(method) {
            return true;
        }
        (self.retry_non_idempotent || opt_in)
            && (*method == Method::POST || *method == Method::PATCH)
    }

    /// Backoff before retry number `retry` (1-based).
    pub(crate) fn backoff_for(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let base = self
            .backoff_factor
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        if self.jitter && !base.is_zero() {
            let half = base / 2;
            let extra = rand::random_range(0..=half.as_micros().min(u64::MAX as u128) as u64);
            half + Duration::from_micros(extra)
        } else {
            base
        }
    }
}

/// Parse `Retry-After` (delta seconds or HTTP-date) relative to `now`. Anything unparseable,
/// negative or in the past yields `None` (treated as absent, never an error).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use opskit_http::retry::parse_retry_after;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(now).ok()
}

pub(crate) fn retry_after_from(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

/// A token bucket shared by all requests of a client: each request earns `ratio` tokens,
/// each retry spends one, with `min_reserve` retries always allowed. When a fan-out of
/// thousands of requests meets a failing server, at most about `ratio` of them are
/// retried instead of all of them, so the client does not turn an outage into a storm.
///
/// ```
/// use opskit_http::RetryBudget;
/// let b = RetryBudget::new(0.25, 5);
/// for _ in 0..5 { assert!(b.try_withdraw()); }
/// assert!(!b.try_withdraw());      // reserve spent
/// for _ in 0..4 { b.deposit(); }   // four requests earn one retry
/// assert!(b.try_withdraw());
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_reserve: u32,
    state: Arc<Mutex<f64>>,
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &self.ratio)
            .field("min_reserve", &self.min_reserve)
            .finish()
    }
}

impl Default for RetryBudget {
    /// 20 % of requests may be retried, plus a reserve of 10 retries.
    fn default() -> Self {
        RetryBudget::new(0.2, 10)
    }
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request plus a reserve of `min_reserve`.
    pub fn new(ratio: f64, min_reserve: u32) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        RetryBudget {
            ratio,
            min_reserve,
            state: Arc::new(Mutex::new(f64::from(min_reserve))),
        }
    }
    fn cap(&self) -> f64 {
        f64::from(self.min_reserve) + self.ratio * 1000.0
    }
    /// A request was made.
    pub fn deposit(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = (*s + self.ratio).min(self.cap());
        }
    }
    /// Take one retry from the budget; `false` when none is left.
    pub fn try_withdraw(&self) -> bool {
        match self.state.lock() {
            Ok(mut s) if *s >= 1.0 - 1e-9 => {
                *s -= 1.0;
                true
            }
            _ => false,
        }
    }
}
