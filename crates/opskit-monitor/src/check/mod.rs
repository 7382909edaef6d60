//! Running one check and judging it against its conditions.
//!
//! Every kind produces a **result object** (JSON) that conditions are written against:
//!
//! | kind | fields |
//! |---|---|
//! | all | `.kind`, `.target`, `.response_time_ms` |
//! | http | `.status`, `.headers` (lower-case names), `.body` (parsed JSON, else text), `.url`, `.ip` (looked up only when a condition reads `.ip`, else null) |
//! | tcp | `.connected`, `.address`, `.ip` |
//! | dns | `.answers` (values, e.g. addresses), `.records` (`{name,type,ttl,value}`), `.rcode` (`NOERROR`) |
//! | tls | `.cert.{subject,issuer,not_before,not_after,expires_in_days,dns_names}`, `.chain_valid`, `.chain_error`, `.chain_length` |
//! | icmp | `.reachable`, `.ip` |
//! | ssh | `.exit_code`, `.stdout`, `.stderr`, `.outcome` |
//! | heartbeat | `.received`, `.last_ping_age_s` (null when never) |
//!
//! A check that cannot get that far (connection refused, timeout, DNS failure, bad host key…)
//! is down with the error as its reason; conditions are only evaluated on a complete result.
//! Without conditions a kind's default applies (see [`default_condition`]).

mod dns;
mod http;
pub mod icmp;
mod ssh;
mod tcp;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::condition::{Condition, Verdict};
use crate::config::{Check, Monitor};

/// What one check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Up,
    Down,
    /// The guard could not reach anything: the result says nothing about the target.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
            Status::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "up" => Status::Up,
            "down" => Status::Down,
            _ => Status::Unknown,
        }
    }
}

/// The condition that failed, with what it saw.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailedCondition {
    pub condition: String,
    /// What the condition yielded (`false`, a value) or its error.
    pub got: Value,
    /// The values it saw: status, latency, a body excerpt, …
    pub seen: Value,
}

/// One check's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub monitor: String,
    pub kind: &'static str,
    pub target: String,
    pub status: Status,
    pub response_time_ms: f64,
    /// Why it is not up, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_condition: Option<FailedCondition>,
    /// The result object the conditions saw (the body cut to an excerpt).
    pub result: Value,
}

/// A kind's raw result: the object, or an error that stopped the check early.
pub(crate) struct Raw {
    pub object: serde_json::Map<String, Value>,
    pub error: Option<String>,
}

impl Raw {
    pub fn ok(object: Value) -> Self {
        Self {
            object: match object {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
            error: None,
        }
    }
    pub fn err(object: Value, error: impl Into<String>) -> Self {
        let mut r = Self::ok(object);
        r.error = Some(error.into());
        r
    }
}

/// The default condition of a kind, used when a monitor lists none.
pub fn default_condition(kind: &str) -> &'static str {
    match kind {
        "http" => ".status >= 200 and .status < 400",
        "tcp" => ".connected",
        "dns" => ".answers | length > 0",
        "tls" => ".chain_valid and .cert.expires_in_days > 0",
        "icmp" => ".reachable",
        "ssh" => ".exit_code == 0",
        _ => ".received",
    }
}

/// Heartbeat pings received, by token (milliseconds since the epoch).
pub type Heartbeats = Arc<Mutex<HashMap<String, i64>>>;

/// Runs checks. One per process: it shares HTTP clients between monitors.
pub struct Checker {
    http: http::Clients,
    defaults: Mutex<HashMap<&'static str, Arc<Condition>>>,
    heartbeats: Heartbeats,
    now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
    started_ms: i64,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checker")
    }
}

impl Default for Checker {
    fn default() -> Self {
        Self::new(Arc::new(crate::now_ms))
    }
}

impl Checker {
    /// A checker with a clock (milliseconds since the epoch; tests inject their own).
    pub fn new(now_ms: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        let started_ms = now_ms();
        Self {
            http: http::Clients::default(),
            defaults: Mutex::new(HashMap::new()),
            heartbeats: Arc::default(),
            now_ms,
            started_ms,
        }
    }

    /// The heartbeat table that the receiver writes to.
    pub fn heartbeats(&self) -> Heartbeats {
        self.heartbeats.clone()
    }

    /// Records a ping for `token`; false when no monitor would use it is up to the caller.
    pub fn ping(&self, token: &str) {
        let now = (self.now_ms)();
        if let Ok(mut h) = self.heartbeats.lock() {
            h.insert(token.to_string(), now);
        }
    }

    fn default_for(&self, kind: &'static str) -> Option<Arc<Condition>> {
        let mut map = self.defaults.lock().ok()?;
        if let Some(c) = map.get(kind) {
            return Some(c.clone());
        }
        let c = Arc::new(Condition::new(default_condition(kind)).ok()?);
        map.insert(kind, c.clone());
        Some(c)
    }

    /// Runs `monitor`'s check once (bounded by its timeout) and judges it.
    pub async fn run(&self, monitor: &Monitor) -> Report {
        let started = Instant::now();
        let deadline = monitor.timeout;
        let raw =
            match tokio::time::timeout(deadline + Duration::from_millis(250), self.raw(monitor))
                .await
            {
                Ok(r) => r,
                Err(_) => Raw::err(json!({}), format!("no result within {deadline:?}")),
            };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.judge(monitor, raw, elapsed_ms)
    }

    async fn raw(&self, monitor: &Monitor) -> Raw {
        let t = monitor.timeout;
        match &monitor.check {
            Check::Http(h) => self.http.check(h, t).await,
            Check::Tcp { target } => tcp::check(target, t).await,
            Check::Dns(d) => dns::check(d, t).await,
            Check::Tls(c) => tls::check(c, t, (self.now_ms)()).await,
            Check::Icmp { host } => icmp::check(host, t).await,
            Check::Ssh(s) => ssh::check(s, t).await,
            Check::Heartbeat { token, grace } => {
                let now = (self.now_ms)();
                let last = self
                    .heartbeats
                    .lock()
                    .ok()
                    .and_then(|h| h.get(token).copied());
                let period_ms = (monitor.interval + *grace).as_millis() as i64;
                let age = last.map(|l| (now - l).max(0));
                // Before the first period has passed since start, a missing ping is not news.
                let received = match age {
                    Some(a) => a <= period_ms,
                    None => now - self.started_ms <= period_ms,
                };
                Raw::ok(json!({
                    "received": received,
                    "last_ping_age_s": age.map(|a| a as f64 / 1000.0),
                }))
            }
        }
    }

    /// Judges a raw result: error → down; else every condition must hold.
    pub(crate) fn judge(&self, monitor: &Monitor, raw: Raw, elapsed_ms: f64) -> Report {
        let kind = monitor.check.kind();
        let target = monitor.check.target();
        let mut obj = raw.object;
        obj.insert("kind".into(), json!(kind));
        obj.insert("target".into(), json!(target));
        obj.entry("response_time_ms")
            .or_insert_with(|| json!(round(elapsed_ms)));
        let response_time_ms = obj
            .get("response_time_ms")
            .and_then(Value::as_f64)
            .unwrap_or(elapsed_ms);
        let result = Value::Object(obj);
        let mut report = Report {
            monitor: monitor.name.clone(),
            kind,
            target,
            status: Status::Up,
            response_time_ms,
            reason: None,
            failed_condition: None,
            result: Value::Null,
        };
        if let Some(e) = raw.error {
            report.status = Status::Down;
            report.reason = Some(e);
        } else {
            let default;
            let conditions: Vec<&Condition> = if monitor.conditions.is_empty() {
                default = self.default_for(kind);
                default.as_deref().into_iter().collect()
            } else {
                monitor.conditions.iter().map(|c| c.as_ref()).collect()
            };
            for c in conditions {
                let got = match c.eval(&result) {
                    Verdict::Holds => continue,
                    Verdict::False(v) => v,
                    Verdict::Error(e) => json!({ "error": e }),
                };
                report.status = Status::Down;
                report.reason = Some(format!(
                    "condition `{}` failed ({})",
                    c.text(),
                    seen_line(&result)
                ));
                report.failed_condition = Some(FailedCondition {
                    condition: c.text().to_string(),
                    got,
                    seen: seen(&result),
                });
                break;
            }
        }
        report.result = excerpt_body(result);
        report
    }
}

fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

const BODY_EXCERPT: usize = 300;

/// The values a failing condition saw: everything but headers and the full body.
fn seen(result: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Value::Object(m) = result {
        for (k, v) in m {
            match k.as_str() {
                "headers" | "records" | "kind" | "target" => {}
                "body" | "stdout" | "stderr" => {
                    out.insert(format!("{k}_excerpt"), json!(cut_text(v)));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn seen_line(result: &Value) -> String {
    let mut parts = Vec::new();
    for k in [
        "status",
        "exit_code",
        "connected",
        "answers",
        "chain_valid",
        "received",
    ] {
        if let Some(v) = result.get(k) {
            parts.push(format!("{k}={v}"));
        }
    }
    if let Some(d) = result.pointer("/cert/expires_in_days") {
        parts.push(format!("expires_in_days={d}"));
    }
    if let Some(v) = result.get("response_time_ms") {
        parts.push(format!("response_time_ms={v}"));
    }
    for k in ["body", "stdout"] {
        if let Some(v) = result.get(k) {
            let t = cut_text(v).split_whitespace().collect::<Vec<_>>().join(" ");
            if !t.is_empty() {
                parts.push(format!("{k}={}", cut(&t, 120)));
            }
        }
    }
    parts.join(", ")
}

fn cut_text(v: &Value) -> String {
    let t = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    cut(&t, BODY_EXCERPT)
}

fn cut(t: &str, n: usize) -> String {
    if t.chars().count() <= n {
        t.to_string()
    } else {
        let mut s: String = t.chars().take(n).collect();
        s.push('…');
        s
    }
}

/// The result kept in reports and the database: a long body or output cut to an excerpt.
fn excerpt_body(mut result: Value) -> Value {
    if let Value::Object(m) = &mut result {
        for k in ["body", "stdout", "stderr"] {
            let long = m.get(k).and_then(|v| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (text.len() > 2048).then(|| cut(&text, 2048))
            });
            if let Some(t) = long {
                m.insert(k.to_string(), json!(t));
            }
        }
    }
    result
}

/// Is at least one guard target answering? (No guards: yes.)
pub async fn guard_ok(checker: &Checker, guards: &[String], timeout: Duration) -> bool {
    if guards.is_empty() {
        return true;
    }
    let probes = guards.iter().map(|g| async move {
        if g.starts_with("http://") || g.starts_with("https://") {
            // Any HTTP answer, whatever the status, proves the network works.
            checker.http.any_answer(g, timeout).await
        } else {
            tcp::check(g, timeout).await.error.is_none()
        }
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .any(|x| x)
}
