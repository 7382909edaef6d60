//! The DigitalOcean API v2, as the seeds' `DigitalOceanAPI` uses it (`list_droplets`,
//! `power_action`, `create_snapshot`) and more: every page through `links.pages.next`, the
//! action name checked before anything is sent, an action's progress polled until it completes
//! or errors within a deadline, and DigitalOcean's error document (`{"id","message"}`) as a typed
//! error.
//!
//! The engine honours DigitalOcean's `ratelimit-remaining`/`ratelimit-reset` headers (it pauses
//! at zero instead of walking into a 429) and `retry-after` on a burst 429. Reads are retried like
//! any GET; an action POST is sent again only after a 429 (DigitalOcean did not act on it) or a
//! failed connection (nothing was sent), never after a timeout or a 5xx, which may have started it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), opskit_apis::Error> {
//! use futures::TryStreamExt;
//! use opskit_apis::digitalocean::{DigitalOcean, PowerAction, WaitOptions};
//! let api = DigitalOcean::new(
//!     opskit_apis::digitalocean::DEFAULT_API_URL,
//!     opskit_http::ClientConfig::default(),
//! )?;
//! let mut pages = std::pin::pin!(api.droplets(Some("production")));
//! while let Some(page) = pages.try_next().await? {
//!     for d in page {
//!         println!("{} {}", d["name"], d["status"]);
//!     }
//! }
//! let action = api.power_action(3164444, "reboot".parse::<PowerAction>()?).await?;
//! let done = api.wait_for_action(&action, &WaitOptions::default(), |_| {}).await?;
//! println!("{} {}", done.id, done.status);
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use opskit_http::{Client, ClientConfig, HeaderMap, Response, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Error;

const API: &str = "DigitalOcean";

/// `https://api.digitalocean.com/v2`.
pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com/v2";

/// The largest page DigitalOcean gives.
const PER_PAGE: &str = "200";

/// How many times an action POST is sent when DigitalOcean answers 429 (it did not act on it).
const POST_ATTEMPTS: u32 = 4;

/// The droplet power actions (`POST /v2/droplets/{id}/actions` with `{"type": …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerAction {
    PowerOn,
    PowerOff,
    Reboot,
    Shutdown,
    PowerCycle,
}

impl PowerAction {
    /// Every power action, in the order help texts list them.
    pub const ALL: [PowerAction; 5] = [
        PowerAction::PowerOn,
        PowerAction::PowerOff,
        PowerAction::Reboot,
        PowerAction::Shutdown,
        PowerAction::PowerCycle,
    ];

    /// The `type` DigitalOcean takes.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::PowerOn => "power_on",
            PowerAction::PowerOff => "power_off",
            PowerAction::Reboot => "reboot",
            PowerAction::Shutdown => "shutdown",
            PowerAction::PowerCycle => "power_cycle",
        }
    }

    /// `power_on, power_off, reboot, shutdown, power_cycle`.
    pub fn names() -> String {
        PowerAction::ALL.map(PowerAction::as_str).join(", ")
    }
}

impl std::fmt::Display for PowerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PowerAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim();
        if let Some(a) = PowerAction::ALL.iter().find(|a| a.as_str() == wanted) {
            return Ok(*a);
        }
        let near = wanted.to_ascii_lowercase().replace('-', "_");
        let guess = PowerAction::ALL
            .iter()
            .find(|a| a.as_str() == near)
            .map(|a| format!(" (did you mean {a}?)"))
            .unwrap_or_default();
        Err(Error::InvalidInput(format!(
            "`{s}` is not a droplet power action{guess}; the actions are {}",
            PowerAction::names()
        )))
    }
}

/// An action (`GET /v2/actions/{id}`): `status` is `in-progress`, `completed` or `errored`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub id: u64,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub resource_id: Option<u64>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub region_slug: Option<String>,
}

impl Action {
    /// `completed` or `errored`.
    pub fn is_done(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "errored")
    }
}

/// How to wait for an action.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Between two looks at the action (default 3 s).
    pub poll: Duration,
    /// Give up after this long (default 10 min).
    pub timeout: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            poll: Duration::from_secs(3),
            timeout: Duration::from_secs(600),
        }
    }
}

/// A client of the DigitalOcean API v2.
#[derive(Debug, Clone)]
pub struct DigitalOcean {
    client: Client,
}

impl DigitalOcean {
    /// A client of `base_url` (`https://api.digitalocean.com/v2`); `config`'s auth (a `Bearer`
    /// token), deadlines, retries, rate limit and TLS apply.
    pub fn new(base_url: &str, mut config: ClientConfig) -> Result<Self, Error> {
        config.base_url = Some(base_url.to_owned());
        if !config
            .default_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
        {
            config
                .default_headers
                .push(("Accept".into(), "application/json".into()));
        }
        // the last answer of a retried 429/5xx is returned, so its error document is shown
        config.retry.raise_on_status = false;
        Ok(DigitalOcean {
            client: Client::new(config)?,
        })
    }

    /// The engine client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every droplet (or those tagged `tag`), page by page, 200 a page.
    pub fn droplets(
        &self,
        tag: Option<&str>,
    ) -> impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static {
        let mut query = vec![("per_page".to_owned(), PER_PAGE.to_owned())];
        if let Some(t) = tag {
            query.push(("tag_name".into(), t.to_owned()));
        }
        self.pages("droplets".into(), query, "droplets")
    }

    /// One droplet.
    pub async fn droplet(&self, id: u64) -> Result<Value, Error> {
        check_id(id)?;
        let resp = self.client.get(&format!("droplets/{id}")).send().await?;
        let body = json_or_error(resp).await?;
        body.get("droplet")
            .cloned()
            .ok_or_else(|| decode(&format!("droplets/{id}"), "no `droplet` in the answer"))
    }

    /// Starts a power action on a droplet; the action is `in-progress` when it returns.
    pub async fn power_action(&self, droplet: u64, action: PowerAction) -> Result<Action, Error> {
        check_id(droplet)?;
        self.post_action(droplet, json!({"type": action.as_str()}))
            .await
    }

    /// Starts a snapshot of a droplet (DigitalOcean advises powering it off first).
    pub async fn snapshot(&self, droplet: u64, name: &str) -> Result<Action, Error> {
        check_id(droplet)?;
        if name.trim().is_empty() {
            return Err(Error::InvalidInput("the snapshot name is empty".into()));
        }
        self.post_action(droplet, json!({"type": "snapshot", "name": name}))
            .await
    }

    /// One action.
    pub async fn action(&self, id: u64) -> Result<Action, Error> {
        let path = format!("actions/{id}");
        let resp = self.client.get(&path).send().await?;
        action_of(&path, json_or_error(resp).await?)
    }

    /// Polls `action` until it is `completed` (returned) or `errored` ([`Error::OperationFailed`]),
    /// or `options.timeout` passes ([`Error::WaitTimedOut`]). `progress` sees every state read.
    pub async fn wait_for_action(
        &self,
        action: &Action,
        options: &WaitOptions,
        mut progress: impl FnMut(&Action),
    ) -> Result<Action, Error> {
        let started = tokio::time::Instant::now();
        let deadline = started + options.timeout;
        let mut current = action.clone();
        loop {
            match current.status.as_str() {
                "completed" => return Ok(current),
                "errored" => {
                    return Err(Error::OperationFailed {
                        api: API,
                        what: describe(&current),
                        message: format!(
                            "errored{}",
                            current
                                .completed_at
                                .as_deref()
                                .map(|t| format!(" at {t}"))
                                .unwrap_or_default()
                        ),
                    });
                }
                _ => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(timed_out(&current, options.timeout));
            }
            tokio::time::sleep_until((now + options.poll).min(deadline)).await;
            if tokio::time::Instant::now() >= deadline {
                // one last look at the deadline: it may have finished meanwhile
                if let Ok(Ok(last)) =
                    tokio::time::timeout(Duration::from_secs(5), self.action(current.id)).await
                    && last.is_done()
                {
                    current = last;
                    progress(&current);
                    continue;
                }
                return Err(timed_out(&current, options.timeout));
            }
            current = match tokio::time::timeout_at(deadline, self.action(current.id)).await {
                Ok(read) => read?,
                Err(_) => return Err(timed_out(&current, options.timeout)),
            };
            progress(&current);
        }
    }

    /// `POST droplets/{id}/actions`, sent again only after a 429 or a failed connection.
    async fn post_action(&self, droplet: u64, body: Value) -> Result<Action, Error> {
        let path = format!("droplets/{droplet}/actions");
        let mut attempt = 1;
        loop {
            let resp = self.client.post(&path).json(&body).send().await?;
            let status = resp.status().as_u16();
            if status == 429 && attempt < POST_ATTEMPTS {
                let wait = retry_after(resp.headers()).unwrap_or(Duration::from_secs(1 << attempt));
                if wait <= Duration::from_secs(60) {
                    tracing::info!(attempt, ?wait, "DigitalOcean answered 429; sending again");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            }
            return action_of(&path, json_or_error(resp).await?);
        }
    }

    /// Every page of `path` through `links.pages.next`; the items are the array at `key`.
    fn pages(
        &self,
        path: String,
        query: Vec<(String, String)>,
        key: &'static str,
    ) -> impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static {
        struct St {
            client: Client,
            next: Option<Next>,
            origin: Option<url::Origin>,
            seen: std::collections::HashSet<String>,
        }
        enum Next {
            First(String, Vec<(String, String)>),
            Url(Url),
        }
        let st = St {
            client: self.client.clone(),
            next: Some(Next::First(path, query)),
            origin: None,
            seen: Default::default(),
        };
        futures::stream::try_unfold(st, move |mut st| async move {
            let Some(next) = st.next.take() else {
                return Ok(None);
            };
            let rb = match next {
                Next::First(path, query) => {
                    let mut rb = st.client.get(&path);
                    for (k, v) in query {
                        rb = rb.query_pair(k, v);
                    }
                    rb
                }
                Next::Url(u) => st.client.get(u.as_str()),
            };
            let resp = rb.send().await?;
            let url = resp.url().clone();
            let body = json_or_error(resp).await?;
            if st.origin.is_none() {
                st.origin = Some(url.origin());
            }
            let items = match body.get(key) {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Null) | None if body.get("meta").is_some() => Vec::new(),
                _ => {
                    return Err(decode(
                        url.as_str(),
                        &format!("no `{key}` array in the page"),
                    ));
                }
            };
            // a missing links, pages or next is the last page [DO-DESC]
            if let Some(next) = body
                .pointer("/links/pages/next")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                && !items.is_empty()
            {
                let next = url
                    .join(next)
                    .map_err(|e| decode(url.as_str(), &format!("bad next page {next:?}: {e}")))?;
                if st.origin.as_ref().is_some_and(|o| *o != next.origin()) {
                    return Err(decode(
                        url.as_str(),
                        &format!(
                            "the next page is on another origin ({}); not following it with the token",
                            next.origin().ascii_serialization()
                        ),
                    ));
                }
                if !st.seen.insert(next.to_string()) {
                    return Err(decode(
                        url.as_str(),
                        "the same next page was given twice; stopping",
                    ));
                }
                st.next = Some(Next::Url(next));
            }
            Ok(Some((items, st)))
        })
    }
}

fn check_id(id: u64) -> Result<(), Error> {
    if id == 0 {
        return Err(Error::InvalidInput(
            "a droplet id is a whole number from 1".into(),
        ));
    }
    Ok(())
}

/// `action 36804745 (reboot) on droplet 3164444`.
fn describe(a: &Action) -> String {
    let mut s = format!("action {} ({})", a.id, a.kind);
    if let Some(r) = a.resource_id {
        s.push_str(&format!(
            " on {} {r}",
            a.resource_type.as_deref().unwrap_or("droplet")
        ));
    }
    s
}

fn timed_out(a: &Action, after: Duration) -> Error {
    Error::WaitTimedOut {
        what: describe(a),
        after,
        last: a.status.clone(),
    }
}

fn action_of(path: &str, body: Value) -> Result<Action, Error> {
    let Some(a) = body.get("action") else {
        return Err(decode(path, "no `action` in the answer"));
    };
    serde_json::from_value(a.clone()).map_err(|e| decode(path, &format!("the action: {e}")))
}

fn decode(url: &str, message: &str) -> Error {
    Error::Decode {
        url: url.to_owned(),
        message: message.to_owned(),
    }
}

/// The body as JSON on success; DigitalOcean's error otherwise.
async fn json_or_error(resp: Response) -> Result<Value, Error> {
    let status = resp.status();
    if !status.is_success() {
        return Err(error_of(resp).await);
    }
    if status.as_u16() == 204 {
        return Ok(Value::Null);
    }
    Ok(resp.json::<Value>().await?)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// DigitalOcean's error for a non-success answer: `{"id","message","request_id"?}` as
/// [`Error::Api`] (kind = its `id`), a 429 as [`Error::RateLimited`].
async fn error_of(resp: Response) -> Error {
    let status = resp.status();
    let headers = resp.headers().clone();
    let url = resp.url().to_string();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Error::Http(e),
    };
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    let message = field("message").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned();
        if text.is_empty() {
            format!("HTTP {status} from {url}")
        } else {
            text
        }
    });
    if status.as_u16() == 429 {
        let resets_at = retry_after(&headers)
            .map(|w| SystemTime::now() + w)
            .or_else(|| {
                let reset: u64 = headers
                    .get("ratelimit-reset")?
                    .to_str()
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some(UNIX_EPOCH + Duration::from_secs(reset))
            });
        return Error::RateLimited {
            api: API,
            resets_at,
            message,
        };
    }
    let request_id = field("request_id").or_else(|| {
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    Error::Api {
        api: API,
        status: status.as_u16(),
        kind: field("id")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        message,
        details: request_id
            .map(|r| vec![format!("request id {r}")])
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn power_action_names() {
        for a in PowerAction::ALL {
            assert_eq!(a.as_str().parse::<PowerAction>().unwrap(), a);
        }
        let e = "restart".parse::<PowerAction>().unwrap_err().to_string();
        assert!(
            e.contains("power_on, power_off, reboot, shutdown, power_cycle"),
            "{e}"
        );
        let e = "power-off".parse::<PowerAction>().unwrap_err().to_string();
        assert!(e.contains("did you mean power_off?"), "{e}");
    }

    #[test]
    fn action_object() {
        let a = action_of(
            "p",
            json!({"action": {"id": 7, "status": "in-progress", "type": "reboot",
                "started_at": "2026-11-30T10:00:00Z", "completed_at": null,
                "resource_id": 3, "resource_type": "droplet", "region": {"slug": "fra1"},
                "region_slug": "fra1"}}),
        )
        .unwrap();
        assert_eq!(a.kind, "reboot");
        assert!(!a.is_done());
        assert_eq!(describe(&a), "action 7 (reboot) on droplet 3");
    }
}
