//! Prometheus metrics: requests by method, route and status, a latency histogram per route, and
//! authentication failures. Every label comes from a closed set: methods outside the standard
//! ones are `_OTHER`, requests that matched no route are `unmatched`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opskit_monitor::metrics::escape_label;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Everything about one route: counts by (method, status) — a handful, so a small vector — and
/// its latency histogram. Recording a known route allocates nothing.
#[derive(Default)]
struct Route {
    requests: Vec<(String, u16, u64)>,
    latency: Histogram,
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, Route>,
}

/// Number of independently locked shards: each thread records into its own, so the worker
/// threads never wait on each other; `/metrics` adds them up.
const SHARDS: usize = 16;

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// How a caller tried to prove who they are (a closed set: the `method` label of
/// `opskit_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Login,
    Basic,
    ApiKey,
}

impl AuthMethod {
    const ALL: [AuthMethod; 3] = [AuthMethod::Login, AuthMethod::Basic, AuthMethod::ApiKey];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Login => "login",
            AuthMethod::Basic => "basic",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// Why an authentication attempt failed (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Wrong password, unknown user or key, revoked key.
    BadCredentials,
    /// Refused by the guessing throttle before anything was checked.
    Throttled,
}

/// The process's request metrics.
pub struct Metrics {
    shards: Box<[Mutex<Inner>]>,
    /// `[method][reason]` failure counts.
    auth_failures: [[AtomicU64; 2]; 3],
    /// argon2 verifications run (each costs ~20 ms of CPU and ~19 MiB).
    password_verifications: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            auth_failures: Default::default(),
            password_verifications: AtomicU64::new(0),
        }
    }
}

/// The HTTP methods that get their own label; anything else is `_OTHER` (a client may send any
/// token as a method, and labels must come from a closed set).
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        M::TRACE => "TRACE",
        M::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Counts a failed authentication attempt.
    pub fn auth_failure(&self, method: AuthMethod, reason: AuthFailure) {
        let m = AuthMethod::ALL
            .iter()
            .position(|x| *x == method)
            .unwrap_or(0);
        let r = usize::from(reason == AuthFailure::Throttled);
        self.auth_failures[m][r].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one password hash verification.
    pub fn password_verified(&self) {
        self.password_verifications.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let shard = SHARD.with(|s| *s);
        let Ok(mut inner) = self.shards[shard].lock() else {
            return;
        };
        let r = match inner.routes.get_mut(route) {
            Some(r) => r,
            None => inner.routes.entry(route.to_owned()).or_default(),
        };
        match r
            .requests
            .iter_mut()
            .find(|(m, s, _)| *s == status && m == method)
        {
            Some((_, _, n)) => *n += 1,
            None => r.requests.push((method.to_owned(), status, 1)),
        }
        let h = &mut r.latency;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // the shards added up
        let mut requests: BTreeMap<(String, String, u16), u64> = BTreeMap::new();
        let mut latency: BTreeMap<String, Histogram> = BTreeMap::new();
        for shard in &self.shards {
            let Ok(inner) = shard.lock() else {
                continue;
            };
            for (route, r) in &inner.routes {
                for (m, st, n) in &r.requests {
                    *requests.entry((m.clone(), route.clone(), *st)).or_default() += n;
                }
                let h = latency.entry(route.clone()).or_default();
                for (total, c) in h.counts.iter_mut().zip(r.latency.counts) {
                    *total += c;
                }
                h.sum += r.latency.sum;
                h.count += r.latency.count;
            }
        }
        out.push_str(
            "# HELP opskit_auth_failures_total Failed authentication attempts by method and reason.\n",
        );
        out.push_str("# TYPE opskit_auth_failures_total counter\n");
        for (i, m) in AuthMethod::ALL.iter().enumerate() {
            for (j, reason) in ["bad_credentials", "throttled"].iter().enumerate() {
                let _ = writeln!(
                    out,
                    "opskit_auth_failures_total{{method=\"{}\",reason=\"{reason}\"}} {}",
                    m.as_str(),
                    self.auth_failures[i][j].load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP opskit_auth_password_verifications_total Password hashes verified (argon2id).\n");
        out.push_str("# TYPE opskit_auth_password_verifications_total counter\n");
        let _ = writeln!(
            out,
            "opskit_auth_password_verifications_total {}",
            self.password_verifications.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP opskit_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE opskit_http_requests_total counter\n");
        for ((method, route, status), n) in &requests {
            let _ = writeln!(
                out,
                "opskit_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape_label(method),
                escape_label(route)
            );
        }
        out.push_str(
            "# HELP opskit_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE opskit_http_request_duration_seconds histogram\n");
        for (route, h) in &latency {
            let route = escape_label(route);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "opskit_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "opskit_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "opskit_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "opskit_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests recorded on many threads (so in several shards) add up in the exposition.
    #[test]
    fn shards_add_up() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|_| {
                let m = std::sync::Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        m.record("GET", "/a", 200, Duration::from_micros(300));
                    }
                    m.record("POST", "/a", 201, Duration::from_millis(2));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = SHARDS + 3;
        let text = m.render();
        assert!(text.contains(&format!(
            "opskit_http_requests_total{{method=\"GET\",route=\"/a\",status=\"200\"}} {}",
            10 * n
        )));
        assert!(text.contains(&format!(
            "opskit_http_requests_total{{method=\"POST\",route=\"/a\",status=\"201\"}} {n}"
        )));
        assert!(text.contains(&format!(
            "opskit_http_request_duration_seconds_bucket{{route=\"/a\",le=\"0.0005\"}} {}",
            10 * n
        )));
        assert!(text.contains(&format!(
            "opskit_http_request_duration_seconds_count{{route=\"/a\"}} {}",
            11 * n
        )));
    }
}
