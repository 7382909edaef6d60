//! The dispatcher: delivers outbox rows in order per monitor and destination, retrying with
//! backoff. A row's id is its webhook id, identical on every attempt (and after a restart), so
//! a receiver can drop a duplicate; PagerDuty merges on the incident's `dedup_key`; Jira issues
//! carry a label with the incident id, so a create repeated after a crash comments on the issue
//! instead of opening a second one.

use std::collections::HashSet;
use std::time::Duration;

use opskit_http::{Auth, Client, ClientConfig, RetryPolicy, Timeouts};
use opskit_notify::deliver::{ChatSender, DeliveryOptions, FailureKind, Signing, WebhookSender};
use opskit_notify::jira::IssueRequest;
use opskit_notify::pagerduty::{PagerDutySender, Trigger};
use opskit_notify::signing::WebhookSecret;
use opskit_notify::teams::CardFormat;
use opskit_notify::{Alert, JiraClient, Severity};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::config::{Config, Destination};
use crate::store::Db;
use crate::{Error, Result};

/// Attempts before an alert is given up (about a day with the backoff below).
pub const MAX_ATTEMPTS: i64 = 30;

/// Wait before attempt `n + 1`: 1 s, 2 s, 4 s … up to 10 minutes.
pub fn backoff(attempts: i64) -> Duration {
    let secs = 1u64 << attempts.clamp(0, 10);
    Duration::from_secs(secs.min(600))
}

/// One pending outbox row.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub monitor: String,
    pub destination: String,
    pub incident_id: String,
    pub event: String,
    pub payload: Value,
    pub created_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
}

/// What one delivery attempt did.
#[derive(Debug)]
enum Attempt {
    Delivered { external_key: Option<String> },
    Retry(String),
    GiveUp(String),
}

/// Delivers outbox rows.
pub struct Dispatcher {
    db: Db,
    chat: ChatSender,
    webhook: WebhookSender,
    pagerduty: PagerDutySender,
    options: DeliveryOptions,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatcher")
    }
}

impl Dispatcher {
    pub fn new(db: Db) -> Result<Self> {
        // One attempt per call: the outbox retries, with the same id, across restarts too.
        let options = DeliveryOptions {
            retries: 0,
            timeout: Duration::from_secs(15),
            ..DeliveryOptions::default()
        };
        let e = |e: opskit_notify::Error| Error::Other(e.to_string());
        Ok(Self {
            chat: ChatSender::new(&options).map_err(e)?,
            webhook: WebhookSender::new(&options).map_err(e)?,
            pagerduty: PagerDutySender::new(&options).map_err(e)?,
            options,
            db,
        })
    }

    /// The undelivered rows, the first of each monitor and destination only (order matters:
    /// a resolve never overtakes its trigger).
    pub async fn pending(&self) -> Result<Vec<Pending>> {
        let rows = sqlx::query(
            "SELECT id, monitor, destination, incident_id, event, payload, created_ms, attempts, \
             next_attempt_ms FROM outbox WHERE delivered_ms IS NULL AND failed_ms IS NULL \
             ORDER BY seq, id LIMIT 1000",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for r in rows {
            let monitor: String = r.get(1);
            let destination: String = r.get(2);
            if !seen.insert((monitor.clone(), destination.clone())) {
                continue;
            }
            let payload: String = r.get(5);
            out.push(Pending {
                id: r.get(0),
                monitor,
                destination,
                incident_id: r.get(3),
                event: r.get(4),
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                created_ms: r.get(6),
                attempts: r.get(7),
                next_attempt_ms: r.get(8),
            });
        }
        Ok(out)
    }

    /// Delivers every row due at `now_ms`, at most `concurrency` at a time; returns how many
    /// were delivered.
    pub async fn deliver_due(
        &self,
        config: &Config,
        now_ms: i64,
        concurrency: usize,
    ) -> Result<usize> {
        use futures::StreamExt as _;
        let due: Vec<Pending> = self
            .pending()
            .await?
            .into_iter()
            .filter(|p| p.next_attempt_ms <= now_ms)
            .collect();
        let results: Vec<Result<bool>> = futures::stream::iter(due)
            .map(|p| async move { self.deliver_one(config, &p, now_ms).await })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut n = 0;
        for r in results {
            if r? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The earliest `next_attempt_ms` among pending rows.
    pub async fn next_due(&self) -> Result<Option<i64>> {
        Ok(self
            .pending()
            .await?
            .iter()
            .map(|p| p.next_attempt_ms)
            .min())
    }

    /// Claims `p` for delivery. With a fence (a leader among replicas), the claim checks the
    /// fencing token in the same transaction and records it on the row, so a deposed leader can
    /// send nothing; a row claimed by an earlier leader and not finished is claimed again here
    /// (same row, same webhook id). `Ok(None)`: already delivered or given up meanwhile.
    async fn claim(&self, p: &Pending, now_ms: i64) -> Result<Option<Option<i64>>> {
        let Some(fence) = &self.db.fence else {
            return Ok(Some(None));
        };
        let Some(token) = fence.token() else {
            return Err(fence.refused("this process does not hold the leader lease"));
        };
        let mut tx = self.db.pool.begin().await?;
        // The write first: on SQLite it takes the write lock before the fence is read.
        let claimed = sqlx::query(
            "UPDATE outbox SET claim_token = $1, claimed_ms = $2 \
             WHERE id = $3 AND delivered_ms IS NULL AND failed_ms IS NULL",
        )
        .bind(token)
        .bind(now_ms)
        .bind(&p.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if fence.check(&mut tx).await? != token {
            return Err(Error::Fenced(
                "the fencing token changed during a claim".into(),
            ));
        }
        tx.commit().await?;
        Ok((claimed == 1).then_some(Some(token)))
    }

    async fn deliver_one(&self, config: &Config, p: &Pending, now_ms: i64) -> Result<bool> {
        let Some(token) = self.claim(p, now_ms).await? else {
            return Ok(false);
        };
        // Retry bookkeeping only while the row is still ours (a successor may have claimed it).
        let ours = if token.is_some() {
            " AND claim_token = $5"
        } else {
            ""
        };
        let attempt = match config.destinations.get(&p.destination) {
            None => Attempt::GiveUp(format!(
                "destination {:?} is no longer in the configuration",
                p.destination
            )),
            Some(d) => self.attempt(d, p).await,
        };
        let attempts = p.attempts + 1;
        match attempt {
            Attempt::Delivered { external_key } => {
                // Delivered is a fact, whoever learns it: recorded even after losing the lease.
                sqlx::query(
                    "UPDATE outbox SET delivered_ms = $1, attempts = $2, external_key = $3, \
                     last_error = NULL WHERE id = $4 AND delivered_ms IS NULL",
                )
                .bind(now_ms)
                .bind(attempts)
                .bind(external_key.as_deref())
                .bind(&p.id)
                .execute(&self.db.pool)
                .await?;
                if let Some(k) = &external_key {
                    sqlx::query(
                        "UPDATE alert_state SET external_key = $1 \
                         WHERE monitor = $2 AND destination = $3 AND incident_id = $4",
                    )
                    .bind(k)
                    .bind(&p.monitor)
                    .bind(&p.destination)
                    .bind(&p.incident_id)
                    .execute(&self.db.pool)
                    .await?;
                }
                tracing::info!(id = %p.id, monitor = %p.monitor, destination = %p.destination, event = %p.event, "alert delivered");
                Ok(true)
            }
            Attempt::Retry(e) if attempts < MAX_ATTEMPTS => {
                let next = now_ms + backoff(attempts - 1).as_millis() as i64;
                tracing::warn!(id = %p.id, destination = %p.destination, error = %e, attempts, "alert delivery failed; will retry");
                let sql = format!(
                    "UPDATE outbox SET attempts = $1, next_attempt_ms = $2, last_error = $3 \
                     WHERE id = $4{ours}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(attempts)
                    .bind(next)
                    .bind(&e)
                    .bind(&p.id);
                if let Some(t) = token {
                    q = q.bind(t);
                }
                q.execute(&self.db.pool).await?;
                Ok(false)
            }
            Attempt::Retry(e) | Attempt::GiveUp(e) => {
                tracing::error!(id = %p.id, destination = %p.destination, error = %e, attempts, "alert delivery given up");
                let sql = format!(
                    "UPDATE outbox SET attempts = $1, failed_ms = $2, last_error = $3 \
                     WHERE id = $4{ours}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(attempts)
                    .bind(now_ms)
                    .bind(&e)
                    .bind(&p.id);
                if let Some(t) = token {
                    q = q.bind(t);
                }
                q.execute(&self.db.pool).await?;
                Ok(false)
            }
        }
    }

    async fn attempt(&self, d: &Destination, p: &Pending) -> Attempt {
        let res = match d {
            Destination::Slack { webhook } => match resolve(webhook).await {
                Ok(url) => self.chat.slack(&url, &chat_alert(p)).await.map(|_| None),
                Err(e) => return Attempt::GiveUp(e),
            },
            Destination::Teams { webhook } => match resolve(webhook).await {
                Ok(url) => self
                    .chat
                    .teams(&url, &chat_alert(p), CardFormat::default())
                    .await
                    .map(|_| None),
                Err(e) => return Attempt::GiveUp(e),
            },
            Destination::Webhook {
                url,
                secret,
                headers,
            } => {
                let signing = match secret {
                    None => Signing::Unsigned,
                    Some(s) => {
                        let text = match resolve(s).await {
                            Ok(t) => t,
                            Err(e) => return Attempt::GiveUp(e),
                        };
                        match WebhookSecret::parse(text.expose_secret()) {
                            Ok(secret) => Signing::Standard {
                                secrets: vec![secret],
                                id: Some(p.id.clone()),
                                timestamp: Some(p.created_ms.div_euclid(1000)),
                            },
                            Err(e) => return Attempt::GiveUp(format!("webhook secret: {e}")),
                        }
                    }
                };
                let body = p.payload.to_string().into_bytes();
                self.webhook
                    .send(url, body, &signing, headers)
                    .await
                    .map(|_| None)
            }
            Destination::PagerDuty {
                routing_key,
                url,
                severity,
            } => {
                let key = match resolve(routing_key).await {
                    Ok(k) => k,
                    Err(e) => return Attempt::GiveUp(e),
                };
                if p.event == "resolve" {
                    self.pagerduty
                        .resolve(url, &key, &p.incident_id)
                        .await
                        .map(|_| Some(p.incident_id.clone()))
                } else {
                    let mut t = Trigger::new(summary(p), p.monitor.clone(), severity.clone());
                    t.timestamp = p.payload["time"].as_str().map(String::from);
                    t.group = p.payload["group"].as_str().map(String::from);
                    t.class = p.payload["kind"].as_str().map(String::from);
                    t.component = p.payload["target"].as_str().map(String::from);
                    t.custom_details = json!({
                        "reason": p.payload["reason"],
                        "failed_condition": p.payload["failed_condition"],
                        "response_time_ms": p.payload["response_time_ms"],
                        "incident_started_at": p.payload["incident_started_at"],
                    });
                    self.pagerduty
                        .trigger(url, &key, &p.incident_id, &t)
                        .await
                        .map(|_| Some(p.incident_id.clone()))
                }
            }
            Destination::Jira { .. } => return self.jira(d, p).await,
        };
        match res {
            Ok(key) => Attempt::Delivered { external_key: key },
            Err(e) => classify(&e),
        }
    }

    async fn jira(&self, d: &Destination, p: &Pending) -> Attempt {
        let Destination::Jira {
            url,
            email,
            token,
            project,
            issue_type,
            labels,
            priority,
            done_transition,
        } = d
        else {
            return Attempt::GiveUp("not a Jira destination".into());
        };
        let client = match JiraClient::new(url, email, token.clone(), &self.options) {
            Ok(c) => c,
            Err(e) => return Attempt::GiveUp(e.to_string()),
        };
        let now = opskit_notify::alert::now_rfc3339();
        if p.event == "trigger" {
            let mut req = IssueRequest::new(project.clone(), summary(p));
            req.issue_type = issue_type.clone();
            req.priority = priority.clone();
            req.description = Some(description(p));
            req.labels = labels.clone();
            req.labels.push("opskit-monitor".into());
            req.labels.push(format!("opskit-{}", p.incident_id));
            return match client.open(&req, true, &now).await {
                Ok(o) => Attempt::Delivered {
                    external_key: Some(o.key().to_string()),
                },
                Err(e) => classify(&e),
            };
        }
        // Remind and resolve act on the issue the trigger created.
        let key = match self.trigger_key(p).await {
            Ok(Some(k)) => k,
            Ok(None) => {
                return Attempt::GiveUp(
                    "no Jira issue was created for this incident (its trigger was not delivered)"
                        .into(),
                );
            }
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        let text = if p.event == "resolve" {
            format!("Resolved at {now}: {} is up again.", p.monitor)
        } else {
            format!("Still down at {now}: {}", description(p))
        };
        if let Err(e) = client
            .comment(
                &key,
                &json!({ "body": opskit_notify::adf::from_plain_text(&text) }),
            )
            .await
        {
            return classify(&e);
        }
        if p.event == "resolve"
            && let Err(e) = transition(url, email, token, &key, done_transition).await
        {
            return e;
        }
        Attempt::Delivered {
            external_key: Some(key),
        }
    }

    async fn trigger_key(&self, p: &Pending) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT external_key FROM outbox WHERE incident_id = $1 AND destination = $2 \
             AND event = 'trigger' AND delivered_ms IS NOT NULL",
        )
        .bind(&p.incident_id)
        .bind(&p.destination)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }
}

async fn resolve(secret: &opskit_http::Secret) -> std::result::Result<SecretString, String> {
    secret.resolve().await.map_err(|e| e.to_string())
}

/// 429, 5xx, timeouts and connection failures are retried; other answers are final.
fn classify(e: &opskit_notify::Error) -> Attempt {
    match e {
        opskit_notify::Error::Delivery { kind, .. } => match kind {
            FailureKind::Status(s) if *s == 429 || *s >= 500 || *s == 408 => {
                Attempt::Retry(e.to_string())
            }
            FailureKind::Status(_) | FailureKind::Other => Attempt::GiveUp(e.to_string()),
            FailureKind::Timeout | FailureKind::Connection => Attempt::Retry(e.to_string()),
        },
        opskit_notify::Error::UnexpectedResponse { .. } => Attempt::Retry(e.to_string()),
        _ => Attempt::GiveUp(e.to_string()),
    }
}

fn summary(p: &Pending) -> String {
    match p.event.as_str() {
        "resolve" => format!("{} is up again", p.monitor),
        "remind" => format!("{} is still down", p.monitor),
        _ => format!("{} is down", p.monitor),
    }
}

fn description(p: &Pending) -> String {
    let mut lines = vec![format!(
        "{} ({} check of {})",
        summary(p),
        p.payload["kind"].as_str().unwrap_or("?"),
        p.payload["target"].as_str().unwrap_or("?")
    )];
    if let Some(d) = p.payload["description"].as_str() {
        lines.push(d.to_string());
    }
    if let Some(r) = p.payload["reason"].as_str() {
        lines.push(format!("Reason: {r}"));
    }
    if let Some(s) = p.payload["incident_started_at"].as_str() {
        lines.push(format!("Down since: {s}"));
    }
    lines.push(format!("Incident: {}", p.incident_id));
    lines.join("\n")
}

fn chat_alert(p: &Pending) -> Alert {
    let severity = match p.event.as_str() {
        "resolve" => Severity::Resolved,
        _ => Severity::Critical,
    };
    let message = match p.event.as_str() {
        "resolve" => format!("{} answers as expected again.", p.monitor),
        _ => p.payload["reason"]
            .as_str()
            .unwrap_or("the check failed")
            .to_string(),
    };
    let mut a = Alert::new(severity, summary(p), message);
    a.footer = "opskit monitor".into();
    if let Some(d) = p.payload["description"].as_str() {
        a = a.field("Description", d);
    }
    for (name, key) in [("Group", "group"), ("Check", "kind"), ("Target", "target")] {
        if let Some(v) = p.payload[key].as_str() {
            a = a.field(name, v);
        }
    }
    if let Some(ms) = p.payload["response_time_ms"].as_f64() {
        a = a.field("Response time", format!("{ms:.0} ms"));
    }
    if let Some(s) = p.payload["incident_started_at"].as_str() {
        a = a.field("Down since", s);
    }
    a.field("Incident", p.incident_id.clone())
}

/// Applies the transition named `name` (case-insensitive) to `key`.
async fn transition(
    base: &str,
    email: &str,
    token: &opskit_http::Secret,
    key: &str,
    name: &str,
) -> std::result::Result<(), Attempt> {
    let cfg = ClientConfig {
        base_url: Some(format!("{}/", base.trim_end_matches('/'))),
        auth: Auth::Basic {
            username: email.to_string(),
            password: token.clone(),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(15),
            read_idle: Duration::from_secs(15),
        },
        retry: RetryPolicy::none(),
        max_redirects: 0,
        ..ClientConfig::default()
    };
    let client = Client::new(cfg).map_err(|e| Attempt::GiveUp(e.to_string()))?;
    let path = format!("rest/api/3/issue/{key}/transitions");
    let retry = |e: opskit_http::Error| {
        let s = e.status().map(|s| s.as_u16());
        match s {
            Some(s) if s != 429 && s < 500 => {
                Attempt::GiveUp(format!("Jira transitions of {key}: {e}"))
            }
            _ => Attempt::Retry(format!("Jira transitions of {key}: {e}")),
        }
    };
    let list: Value = client
        .get(&path)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(retry)?
        .error_for_status()
        .await
        .map_err(retry)?
        .json()
        .await
        .map_err(retry)?;
    let id = list["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                || t["to"]["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|t| t["id"].as_str().map(String::from));
    let Some(id) = id else {
        // Already done (no such transition from where it is): nothing left to do.
        tracing::warn!(%key, transition = %name, "Jira offers no such transition; issue left as is");
        return Ok(());
    };
    client
        .post(&path)
        .json(&json!({ "transition": { "id": id } }))
        .send()
        .await
        .map_err(retry)?
        .error_for_status()
        .await
        .map_err(retry)?;
    Ok(())
}
