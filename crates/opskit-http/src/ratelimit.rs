//! Client-side rate limiting: a GCRA quota per host shared by every task using the client,
//! and the server's `RateLimit-*` / `X-RateLimit-*` headers (pause at zero instead of
//! walking into a 429).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::Clock;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::HeaderMap;
use tokio::time::Instant;

use crate::error::Error;

/// Rate-limit settings.
///
/// ```
/// use std::time::Duration;
/// use opskit_http::RateLimit;
/// // at most 10 requests per second to each host, all tasks together
/// let rl = RateLimit::per_interval(10, Duration::from_secs(1));
/// assert_eq!(rl.requests, Some(10));
/// assert!(rl.respect_headers);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// At most this many requests per `interval` per host (`None` = no client-side quota).
    pub requests: Option<u32>,
    /// The interval of the quota.
    pub interval: Duration,
    /// Burst size (default: `requests`).
    pub burst: Option<u32>,
    /// Read `RateLimit-Remaining`/`-Reset` and `X-RateLimit-Remaining`/`-Reset`.
    pub respect_headers: bool,
    /// Warn (tracing + observer) when the remaining quota drops below this.
    pub warn_below: u64,
    /// Longest pause taken because the server's quota is exhausted.
    pub max_pause: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests: None,
            interval: Duration::from_secs(1),
            burst: None,
            respect_headers: true,
            warn_below: 10,
            max_pause: Duration::from_secs(300),
        }
    }
}

impl RateLimit {
    /// `requests` per `interval`, per host.
    pub fn per_interval(requests: u32, interval: Duration) -> Self {
        RateLimit {
            requests: Some(requests),
            interval,
            ..RateLimit::default()
        }
    }
}

/// A governor clock that follows tokio's clock (so paused-time tests work).
#[derive(Clone)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

type Limiter = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    TokioClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

pub(crate) struct RateLimiterState {
    cfg: RateLimit,
    limiter: Option<Limiter>,
    clock: TokioClock,
    paused_until: Mutex<HashMap<String, Instant>>,
}

impl RateLimiterState {
    pub(crate) fn new(cfg: RateLimit) -> Result<Self, Error> {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let limiter = match cfg.requests {
            None => None,
            Some(n) => {
                let n = NonZeroU32::new(n)
                    .ok_or_else(|| Error::config("rate limit must allow at least 1 request"))?;
                if cfg.interval.is_zero() {
                    return Err(Error::config(
                        "rate limit interval must be longer than zero",
                    ));
                }
                let period = cfg.interval / n.get();
                let quota = Quota::with_period(period)
                    .ok_or_else(|| Error::config("rate limit interval is too short"))?;
                let burst = NonZeroU32::new(cfg.burst.unwrap_or(n.get())).unwrap_or(n);
                Some(RateLimiter::new(
                    quota.allow_burst(burst),
                    DefaultKeyedStateStore::default(),
                    clock.clone(),
                ))
            }
        };
        Ok(RateLimiterState {
            cfg,
            limiter,
            clock,
            paused_until: Mutex::new(HashMap::new()),
        })
    }

    /// How long to wait before sending to `host` because of the client quota.
    pub(crate) fn quota_wait(&self, host: &str) -> Option<Duration> {
        let limiter = self.limiter.as_ref()?;
        match limiter.check_key(&host.to_string()) {
            Ok(()) => None,
            Err(not_until) => Some(
                not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_micros(1)),
            ),
        }
    }

    /// How long the server asked us to pause for `host`.
    pub(crate) fn server_pause(&self, host: &str) -> Option<Duration> {
        let map = self.paused_until.lock().ok()?;
        let until = *map.get(host)?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Read the server's rate-limit headers. Returns the remaining count when low.
    pub(crate) fn observe(&self, host: &str, headers: &HeaderMap) -> Option<u64> {
        if !self.cfg.respect_headers {
            return None;
        }
        let remaining = header_u64(headers, "ratelimit-remaining")
            .or_else(|| header_u64(headers, "x-ratelimit-remaining"))?;
        if remaining == 0 {
            let reset = header_u64(headers, "ratelimit-reset")
                .or_else(|| header_u64(headers, "x-ratelimit-reset"));
            let wait = reset
                .map(reset_to_wait)
                .unwrap_or(Duration::from_secs(1))
                .min(self.cfg.max_pause);
            if let Ok(mut map) = self.paused_until.lock() {
                map.insert(host.to_string(), Instant::now() + wait);
            }
        }
        (remaining < self.cfg.warn_below).then_some(remaining)
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    // Some servers send "10, 10;w=1" style lists; take the first number.
    let first = v.split([',', ';']).next()?.trim();
    first.parse::<u64>().ok()
}

/// `Reset` is delta seconds in the IETF draft and an epoch timestamp at GitHub and others.
fn reset_to_wait(reset: u64) -> Duration {
    if reset > 1_000_000_000 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Duration::from_secs(reset.saturating_sub(now))
    } else {
        Duration::from_secs(reset)
    }
}
