//! Delivery through `opskit-http`: a deadline on every attempt, retries with exponential backoff
//! that honour `Retry-After`, per-destination pacing, and a final error that says what the
//! endpoint answered.
//!
//! What is retried, and why:
//! - Signed webhooks: 429, 5xx and timeouts. The `webhook-id` is the idempotency key (it is also
//!   sent as `Idempotency-Key`), identical on every attempt with the same timestamp and signature,
//!   so a receiver can drop a duplicate.
//! - Slack and Teams: the same, explicitly opted in: their webhooks have no idempotency key, so a
//!   message whose answer was lost may show twice — better than an alert that never arrives.
//! - Jira: creating an issue or a comment is retried only after a `429` (Jira did not act on it)
//!   or a failed connection (nothing was sent), never after a timeout or a 5xx, which may have
//!   created it; the read-only JQL search is retried like any read.

use std::time::Duration;

use opskit_http::{Client, ClientConfig, RateLimit, RetryPolicy, Secret, Timeouts};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::alert::Alert;
use crate::jira::{self, CreatedIssue, IssueRequest};
use crate::signing::{self, SignedHeaders, WebhookSecret, XSignatureSecret};
use crate::teams::CardFormat;
use crate::{Error, slack, teams};

/// How a delivery failed in the end (for exit codes and for callers that branch on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The endpoint answered with this HTTP status.
    Status(u16),
    /// No answer within the deadline.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// Anything else (a bad URL, a secret that cannot be read).
    Other,
}

/// Deadlines, retries and pacing of one destination.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Deadline of one attempt (sending and reading the answer).
    pub timeout: Duration,
    /// Deadline of opening the connection.
    pub connect_timeout: Duration,
    /// Retries after the first attempt (0 = never retry).
    pub retries: u32,
    /// First backoff wait; doubles on every retry (a `Retry-After` takes precedence).
    pub backoff: Duration,
    /// Longest single backoff wait.
    pub backoff_max: Duration,
    /// No retry starts later than this after the first attempt.
    pub retry_deadline: Duration,
    /// At most this many messages per interval to the destination's host (`None` = no pacing).
    pub pace: Option<(u32, Duration)>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            retry_deadline: Duration::from_secs(120),
            pace: None,
        }
    }
}

impl DeliveryOptions {
    /// Slack allows about one message per second per webhook.
    pub fn slack() -> Self {
        Self {
            pace: Some((1, Duration::from_secs(1))),
            ..Self::default()
        }
    }

    /// Teams connectors and Workflows throttle at a few requests per second.
    pub fn teams() -> Self {
        Self {
            pace: Some((4, Duration::from_secs(1))),
            ..Self::default()
        }
    }

    fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig {
            timeouts: Timeouts {
                connect: self.connect_timeout,
                request: self.timeout,
                read_idle: self.timeout,
            },
            retry: RetryPolicy::default()
                .total(self.retries)
                .backoff(self.backoff, self.backoff_max)
                .deadline(Some(self.retry_deadline))
                .budget(None),
            ..ClientConfig::default()
        };
        if let Some((n, per)) = self.pace {
            cfg.rate_limit = RateLimit::per_interval(n.max(1), per);
        }
        cfg.max_redirects = 0; // a webhook that redirects is misconfigured; say so
        cfg
    }
}

/// What a successful delivery looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The final HTTP status (2xx).
    pub status: u16,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The answer's body (bounded by the client; Slack says `ok`).
    pub body: String,
    /// The `webhook-id` sent, for signed webhooks.
    pub webhook_id: Option<String>,
}

fn client(cfg: ClientConfig) -> Result<Client, Error> {
    Client::new(cfg).map_err(|e| Error::InvalidInput(format!("cannot set up HTTP: {e}")))
}

/// Turns an `opskit-http` error into one that names the destination (never its secret URL) and
/// says what it answered.
fn delivery_error(destination: &str, err: &opskit_http::Error, secret_url: Option<&str>) -> Error {
    let attempts = match err {
        opskit_http::Error::RetriesExhausted { attempts, .. } => *attempts,
        _ => 1,
    };
    let (kind, what) = match err.root() {
        opskit_http::Error::Status(s) => {
            let body = s.body_excerpt.trim();
            let said = jira::error_summary(body).unwrap_or_else(|| body.to_owned());
            let mut what = format!("answered HTTP {}", s.status);
            if !said.is_empty() {
                what.push_str(&format!(": {said}"));
            }
            if let Some(ra) = s.headers.get("retry-after").and_then(|v| v.to_str().ok()) {
                what.push_str(&format!(" (Retry-After: {ra})"));
            }
            (FailureKind::Status(s.status.as_u16()), what)
        }
        opskit_http::Error::Timeout { after, .. } => (
            FailureKind::Timeout,
            format!("did not answer within {after:?}"),
        ),
        opskit_http::Error::Connect { message, .. } => (
            FailureKind::Connection,
            format!("cannot connect: {message}"),
        ),
        opskit_http::Error::Tls { message, .. } => (
            FailureKind::Connection,
            format!("TLS handshake failed: {message}"),
        ),
        opskit_http::Error::Transport { message, .. } => (
            FailureKind::Connection,
            format!("connection broke: {message}"),
        ),
        other => (FailureKind::Other, other.to_string()),
    };
    let mut detail = if attempts > 1 {
        format!("gave up after {attempts} attempts; the last one {what}")
    } else {
        what
    };
    if let Some(url) = secret_url {
        detail = scrub(&detail, url);
    }
    Error::Delivery {
        destination: destination.to_owned(),
        kind,
        attempts,
        detail,
    }
}

/// Removes a secret URL (Slack and Teams webhook URLs carry their credential in the path or
/// query) from a message that the transport may have written it into.
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    let mut needles = vec![url.to_owned()];
    if let Ok(u) = url::Url::parse(url) {
        needles.push(u.to_string());
        let path = u.path();
        if path.len() > 1 {
            needles.push(path.to_owned());
        }
        if let Some(q) = u.query() {
            needles.push(q.to_owned());
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in needles.iter().filter(|n| !n.is_empty()) {
        out = out.replace(n.as_str(), "[webhook URL redacted]");
    }
    out
}

async fn finish(
    destination: &str,
    sent: Result<opskit_http::Response, opskit_http::Error>,
    secret_url: Option<&str>,
) -> Result<Delivered, Error> {
    let resp = sent.map_err(|e| delivery_error(destination, &e, secret_url))?;
    let attempts = resp.attempts();
    let resp = resp
        .error_for_status()
        .await
        .map_err(|e| delivery_error(destination, &e, secret_url))?;
    let resp = require_success(destination, resp, secret_url)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(Delivered {
        status,
        attempts,
        body,
        webhook_id: None,
    })
}

/// Only a 2xx final answer is a delivery. A redirect (redirects are not followed: the signed
/// body must not go to another address) or any other non-2xx answer is a failed delivery,
/// reported with its status.
fn require_success(
    destination: &str,
    resp: opskit_http::Response,
    secret_url: Option<&str>,
) -> Result<opskit_http::Response, Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let mut detail = format!("answered HTTP {status}");
    if status.is_redirection() {
        let to = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| resp.url().join(l).ok())
            .map(|u| u.origin().ascii_serialization());
        detail.push_str(&match to {
            Some(origin) => format!(
                ", a redirect to {origin}: the alert was NOT delivered (redirects are not followed; update the URL)"
            ),
            None => ", a redirect: the alert was NOT delivered (redirects are not followed; update the URL)".into(),
        });
    } else {
        detail.push_str(": the alert was NOT delivered");
    }
    if let Some(url) = secret_url {
        detail = scrub(&detail, url);
    }
    Err(Error::Delivery {
        destination: destination.to_owned(),
        kind: FailureKind::Status(status.as_u16()),
        attempts: resp.attempts(),
        detail,
    })
}

fn check_url(url: &str, what: &str) -> Result<(), Error> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(Error::InvalidInput(format!(
            "the {what} is not an http(s) URL"
        ))),
    }
}

/// Sends chat alerts to Slack or Teams webhooks; one sender paces all messages it sends.
#[derive(Clone)]
pub struct ChatSender {
    client: Client,
}

impl std::fmt::Debug for ChatSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatSender")
    }
}

impl ChatSender {
    pub fn new(options: &DeliveryOptions) -> Result<Self, Error> {
        // Slack and Teams webhook URLs carry their credential in the path: keep it out of logs,
        // verbose events and errors.
        let cfg = ClientConfig {
            secret_path: true,
            ..options.config()
        };
        Ok(Self {
            client: client(cfg)?,
        })
    }

    async fn post(
        &self,
        destination: &str,
        url: &SecretString,
        body: &Value,
    ) -> Result<Delivered, Error> {
        check_url(url.expose_secret(), &format!("{destination} webhook"))?;
        let sent = self
            .client
            .post(url.expose_secret())
            .json(body)
            .retry_non_idempotent(true)
            .send()
            .await;
        finish(destination, sent, Some(url.expose_secret())).await
    }

    /// Posts `alert` to a Slack incoming webhook (its URL is a secret).
    pub async fn slack(&self, webhook: &SecretString, alert: &Alert) -> Result<Delivered, Error> {
        alert.validate()?;
        self.post("Slack", webhook, &slack::payload(alert)).await
    }

    /// Posts an alert or a plain text to a Slack incoming webhook, with the channel, username
    /// and icon overrides of a legacy webhook (checked and normalised first).
    pub async fn slack_message(
        &self,
        webhook: &SecretString,
        message: &slack::Message,
        overrides: &slack::Overrides,
    ) -> Result<Delivered, Error> {
        message.validate()?;
        let overrides = overrides.normalized()?;
        self.post(
            "Slack",
            webhook,
            &slack::message_payload(message, &overrides),
        )
        .await
    }

    /// Posts `alert` to a Teams Workflows webhook (Adaptive Card) or legacy connector.
    pub async fn teams(
        &self,
        webhook: &SecretString,
        alert: &Alert,
        format: CardFormat,
    ) -> Result<Delivered, Error> {
        alert.validate()?;
        self.post("Teams", webhook, &teams::payload(alert, format))
            .await
    }
}

/// How an outgoing webhook is signed.
#[derive(Debug)]
pub enum Signing {
    /// No signature.
    Unsigned,
    /// Standard Webhooks headers, signed with every secret; `id` and `timestamp` default to a new
    /// `msg_…` id and now.
    Standard {
        secrets: Vec<WebhookSecret>,
        id: Option<String>,
        timestamp: Option<i64>,
    },
    /// The seeds' `X-Signature: sha256=<hex>`.
    XSignature(XSignatureSecret),
}

/// Signs and POSTs a JSON body to any endpoint.
#[derive(Clone)]
pub struct WebhookSender {
    client: Client,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSender")
    }
}

impl WebhookSender {
    pub fn new(options: &DeliveryOptions) -> Result<Self, Error> {
        Ok(Self {
            client: client(options.config())?,
        })
    }

    /// POSTs `body` (sent byte for byte: the signature covers exactly these bytes) with the
    /// signature headers and `extra_headers`. The id, timestamp and signature are computed once
    /// and repeated on every retry.
    pub async fn send(
        &self,
        url: &str,
        body: Vec<u8>,
        signing: &Signing,
        extra_headers: &[(String, String)],
    ) -> Result<Delivered, Error> {
        check_url(url, "webhook URL")?;
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .retry_non_idempotent(true);
        for (k, v) in extra_headers {
            req = req.header(k, v);
        }
        let mut webhook_id = None;
        match signing {
            Signing::Unsigned => {}
            Signing::Standard {
                secrets,
                id,
                timestamp,
            } => {
                let id = id.clone().unwrap_or_else(signing::new_message_id);
                let ts = timestamp.unwrap_or_else(signing::unix_now);
                let headers: SignedHeaders = signing::sign(secrets, &id, ts, &body)?;
                for (k, v) in headers.pairs() {
                    req = req.header(k, v);
                }
                req = req.idempotency_key(id.clone());
                webhook_id = Some(id);
            }
            Signing::XSignature(secret) => {
                req = req.header("X-Signature", secret.sign(&body));
            }
        }
        let destination = match url::Url::parse(url) {
            Ok(u) => {
                format!(
                    "webhook {}://{}{}",
                    u.scheme(),
                    u.host_str().unwrap_or_default(),
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                ) + u.path()
            }
            Err(_) => "webhook".to_owned(),
        };
        let sent = req.body(body).send().await;
        let mut delivered = finish(&destination, sent, None).await?;
        delivered.webhook_id = webhook_id;
        Ok(delivered)
    }
}

/// What `JiraClient::open` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JiraOutcome {
    /// A new issue was created.
    Created { key: String, url: String },
    /// An open issue with the same summary and labels existed; it got a comment instead.
    Commented { key: String, url: String },
}

impl JiraOutcome {
    pub fn key(&self) -> &str {
        match self {
            JiraOutcome::Created { key, .. } | JiraOutcome::Commented { key, .. } => key,
        }
    }
    pub fn url(&self) -> &str {
        match self {
            JiraOutcome::Created { url, .. } | JiraOutcome::Commented { url, .. } => url,
        }
    }
}

/// Jira Cloud REST API v3 with Basic auth (`email:api_token`).
#[derive(Clone)]
pub struct JiraClient {
    base: String,
    reads: Client,
    writes: Client,
}

impl std::fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraClient")
            .field("base", &self.base)
            .finish()
    }
}

impl JiraClient {
    /// `base_url` is the site, e.g. `https://example.atlassian.net`.
    pub fn new(
        base_url: &str,
        email: &str,
        token: Secret,
        options: &DeliveryOptions,
    ) -> Result<Self, Error> {
        check_url(base_url, "Jira URL")?;
        // the one Jira credential (shared with opskit-apis' typed client)
        let auth = jira::Credential::basic(email, token)?.auth();
        let base = base_url.trim_end_matches('/').to_owned();
        let mut cfg = options.config();
        cfg.base_url = Some(format!("{base}/"));
        cfg.auth = auth;
        cfg.default_headers
            .push(("accept".into(), "application/json".into()));
        let mut reads = cfg.clone();
        reads.retry = reads.retry.retry_non_idempotent(true);
        let mut writes = cfg;
        writes.retry = writes.retry.statuses([429]);
        writes.retry.read = Some(0);
        Ok(Self {
            base,
            reads: client(reads)?,
            writes: client(writes)?,
        })
    }

    fn destination(&self) -> String {
        format!("Jira at {}", self.base)
    }

    async fn post(&self, reads: bool, path: &str, body: &Value) -> Result<Vec<u8>, Error> {
        let c = if reads { &self.reads } else { &self.writes };
        let sent = c
            .post(path.trim_start_matches('/'))
            .json(body)
            .retry_non_idempotent(true)
            .send()
            .await;
        let dest = self.destination();
        let resp = sent.map_err(|e| delivery_error(&dest, &e, None))?;
        let resp = resp
            .error_for_status()
            .await
            .map_err(|e| delivery_error(&dest, &e, None))?;
        let resp = require_success(&dest, resp, None)?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| delivery_error(&dest, &e, None))?;
        Ok(bytes.to_vec())
    }

    /// Creates the issue.
    pub async fn create(&self, req: &IssueRequest) -> Result<CreatedIssue, Error> {
        req.validate()?;
        let answer = self
            .post(false, jira::CREATE_PATH, &req.create_body())
            .await?;
        serde_json::from_slice(&answer).map_err(|e| Error::UnexpectedResponse {
            destination: self.destination(),
            detail: format!("create answer is not {{\"id\",\"key\"}}: {e}"),
        })
    }

    /// The key of an open issue of the project with the same summary and labels, if any.
    pub async fn find_open_duplicate(&self, req: &IssueRequest) -> Result<Option<String>, Error> {
        req.validate()?;
        let answer = match self.post(true, jira::SEARCH_PATH, &req.search_body()).await {
            // Sites without the enhanced search (Jira Data Center) still have the old endpoint.
            Err(Error::Delivery {
                kind: FailureKind::Status(404),
                ..
            }) => {
                self.post(true, jira::LEGACY_SEARCH_PATH, &req.search_body())
                    .await?
            }
            other => other?,
        };
        jira::find_duplicate(&answer, &req.summary)
    }

    /// Adds a comment (an ADF document built from `text`) to `key`.
    pub async fn comment(&self, key: &str, body: &Value) -> Result<(), Error> {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::InvalidInput(format!("{key:?} is not an issue key")));
        }
        self.post(false, &format!("/rest/api/3/issue/{key}/comment"), body)
            .await
            .map(|_| ())
    }

    /// Creates the issue, or with `dedupe` comments on an open duplicate instead.
    pub async fn open(
        &self,
        req: &IssueRequest,
        dedupe: bool,
        now_rfc3339: &str,
    ) -> Result<JiraOutcome, Error> {
        if dedupe && let Some(key) = self.find_open_duplicate(req).await? {
            self.comment(&key, &req.comment_body(now_rfc3339)).await?;
            let url = jira::browse_url(&self.base, &key);
            return Ok(JiraOutcome::Commented { key, url });
        }
        let created = self.create(req).await?;
        let url = jira::browse_url(&self.base, &created.key);
        Ok(JiraOutcome::Created {
            key: created.key,
            url,
        })
    }
}
