//! PagerDuty Events API v2: trigger and resolve an alert, one `dedup_key` per incident.
//!
//! `POST https://events.pagerduty.com/v2/enqueue` with the integration's routing key. A trigger
//! carries `payload.summary`, `.source` and `.severity`; a resolve needs only the routing key and
//! the same `dedup_key`. PagerDuty answers `202 {"status":"success","dedup_key":…}`. Because an
//! event with a known `dedup_key` is merged into the same alert, retrying after a timeout or a
//! 5xx cannot open a second incident: 429, 5xx and timeouts are retried.
//!
//! ```
//! use opskit_notify::pagerduty::{Trigger, trigger_body, resolve_body};
//! use secrecy::SecretString;
//! let key = SecretString::from("R0UTINGKEY".to_string());
//! let t = Trigger::new("api is down", "monitor/api", "critical");
//! let body = trigger_body(&key, "inc-1", &t);
//! assert_eq!(body["event_action"], "trigger");
//! assert_eq!(body["dedup_key"], "inc-1");
//! assert_eq!(body["payload"]["severity"], "critical");
//! assert_eq!(resolve_body(&key, "inc-1")["event_action"], "resolve");
//! ```

use opskit_http::{Client, ClientConfig, RateLimit, RetryPolicy, Timeouts};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::Error;
use crate::deliver::{Delivered, DeliveryOptions, FailureKind};

/// The Events API v2 endpoint.
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The severities PagerDuty accepts.
pub const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// What a trigger says.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// One line, at most 1024 characters (longer is cut).
    pub summary: String,
    /// What is affected (a host, a monitor name).
    pub source: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    /// RFC 3339 time of the event.
    pub timestamp: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
    /// Anything else, shown in the alert's details.
    pub custom_details: Value,
}

impl Trigger {
    pub fn new(
        summary: impl Into<String>,
        source: impl Into<String>,
        severity: impl Into<String>,
    ) -> Self {
        Self {
            summary: summary.into(),
            source: source.into(),
            severity: severity.into(),
            timestamp: None,
            component: None,
            group: None,
            class: None,
            custom_details: Value::Null,
        }
    }

    /// Checks what PagerDuty would refuse with a 400.
    pub fn validate(&self) -> Result<(), Error> {
        if self.summary.trim().is_empty() {
            return Err(Error::InvalidInput("the PagerDuty summary is empty".into()));
        }
        if self.source.trim().is_empty() {
            return Err(Error::InvalidInput("the PagerDuty source is empty".into()));
        }
        if !SEVERITIES.contains(&self.severity.as_str()) {
            return Err(Error::InvalidInput(format!(
                "PagerDuty severity {:?}: use critical, error, warning or info",
                self.severity
            )));
        }
        Ok(())
    }
}

/// The body of a trigger event.
pub fn trigger_body(routing_key: &SecretString, dedup_key: &str, t: &Trigger) -> Value {
    let summary: String = t.summary.chars().take(1024).collect();
    let mut payload = json!({
        "summary": summary,
        "source": t.source,
        "severity": t.severity,
    });
    let extra = [
        ("timestamp", &t.timestamp),
        ("component", &t.component),
        ("group", &t.group),
        ("class", &t.class),
    ];
    for (k, v) in extra {
        if let Some(v) = v {
            payload[k] = json!(v);
        }
    }
    if !t.custom_details.is_null() {
        payload["custom_details"] = t.custom_details.clone();
    }
    json!({
        "routing_key": routing_key.expose_secret(),
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "opskit",
        "payload": payload,
    })
}

/// The body of a resolve event.
pub fn resolve_body(routing_key: &SecretString, dedup_key: &str) -> Value {
    json!({
        "routing_key": routing_key.expose_secret(),
        "event_action": "resolve",
        "dedup_key": dedup_key,
    })
}

/// Sends events to the Events API (or a compatible endpoint).
#[derive(Clone)]
pub struct PagerDutySender {
    client: Client,
}

impl std::fmt::Debug for PagerDutySender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PagerDutySender")
    }
}

impl PagerDutySender {
    pub fn new(options: &DeliveryOptions) -> Result<Self, Error> {
        let cfg = ClientConfig {
            timeouts: Timeouts {
                connect: options.connect_timeout,
                request: options.timeout,
                read_idle: options.timeout,
            },
            retry: RetryPolicy::default()
                .total(options.retries)
                .backoff(options.backoff, options.backoff_max)
                .deadline(Some(options.retry_deadline))
                .budget(None),
            rate_limit: match options.pace {
                Some((n, per)) => RateLimit::per_interval(n.max(1), per),
                None => RateLimit::default(),
            },
            max_redirects: 0,
            ..ClientConfig::default()
        };
        let client = Client::new(cfg)
            .map_err(|e| Error::InvalidInput(format!("cannot set up HTTP: {e}")))?;
        Ok(Self { client })
    }

    /// Triggers (or updates) the alert `dedup_key`.
    pub async fn trigger(
        &self,
        url: &str,
        routing_key: &SecretString,
        dedup_key: &str,
        t: &Trigger,
    ) -> Result<Delivered, Error> {
        t.validate()?;
        self.post(url, &trigger_body(routing_key, dedup_key, t))
            .await
    }

    /// Resolves the alert `dedup_key`.
    pub async fn resolve(
        &self,
        url: &str,
        routing_key: &SecretString,
        dedup_key: &str,
    ) -> Result<Delivered, Error> {
        self.post(url, &resolve_body(routing_key, dedup_key)).await
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Delivered, Error> {
        let destination = "PagerDuty".to_string();
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(Error::InvalidInput(format!(
                    "the PagerDuty events URL {url:?} is not an http(s) URL"
                )));
            }
        }
        let sent = self
            .client
            .post(url)
            .json(body)
            .retry_non_idempotent(true)
            .send()
            .await;
        let fail = |e: &opskit_http::Error| {
            let attempts = match e {
                opskit_http::Error::RetriesExhausted { attempts, .. } => *attempts,
                _ => 1,
            };
            let (kind, detail) = match e.root() {
                opskit_http::Error::Status(s) => (
                    FailureKind::Status(s.status.as_u16()),
                    format!("answered HTTP {}: {}", s.status, s.body_excerpt.trim()),
                ),
                opskit_http::Error::Timeout { after, .. } => (
                    FailureKind::Timeout,
                    format!("did not answer within {after:?}"),
                ),
                opskit_http::Error::Connect { message, .. }
                | opskit_http::Error::Tls { message, .. }
                | opskit_http::Error::Transport { message, .. } => (
                    FailureKind::Connection,
                    format!("cannot connect: {message}"),
                ),
                other => (FailureKind::Other, other.to_string()),
            };
            Error::Delivery {
                destination: destination.clone(),
                kind,
                attempts,
                detail,
            }
        };
        let resp = sent.map_err(|e| fail(&e))?;
        let attempts = resp.attempts();
        let resp = resp.error_for_status().await.map_err(|e| fail(&e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok(Delivered {
            status,
            attempts,
            body,
            webhook_id: None,
        })
    }
}
