//! The GitHub REST API, as the seeds' `GitHubClient` uses it and more: every page through the
//! `Link` header (never built by hand), pull requests told apart from issues, GitHub's error
//! documents and rate-limit headers as typed errors, and an issue creation that is safe to retry.
//!
//! Conditional requests come from the engine's cache ([`opskit_http::CacheConfig`]): give the
//! client a cache and a re-run sends `If-None-Match` with the stored `ETag`; GitHub answers 304,
//! which does not count against the quota, and the stored page is used.
//!
//! ```no_run
//! # async fn demo() -> Result<(), opskit_apis::Error> {
//! use futures::TryStreamExt;
//! use opskit_apis::github::{GitHub, IssueFilter, Repo};
//! let gh = GitHub::new(opskit_apis::github::DEFAULT_API_URL, opskit_http::ClientConfig::default())?;
//! let repo: Repo = "rust-lang/rust".parse()?;
//! let mut pages = std::pin::pin!(gh.issues(&repo, &IssueFilter::default()));
//! while let Some(page) = pages.try_next().await? {
//!     for issue in page {
//!         println!("#{} {}", issue["number"], issue["title"]);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use opskit_http::{Client, ClientConfig, HeaderMap, Method, Response, Url};
use serde_json::{Value, json};

use crate::error::Error;

const API: &str = "GitHub";

/// `https://api.github.com`; GitHub Enterprise Server is `https://HOST/api/v3`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The REST API version asked for.
pub const API_VERSION: &str = "2022-11-28";

/// The largest page GitHub gives.
const PER_PAGE: &str = "100";

/// The hidden marker an issue created by [`GitHub::create_issue`] carries in its body, so that
/// a retry after a lost answer finds it instead of creating a twin.
const MARKER_PREFIX: &str = "<!-- opskit-idempotency-key: ";

/// `OWNER/REPO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl FromStr for Repo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidInput(format!("`{s}` is not OWNER/REPO (e.g. rust-lang/rust)"));
        let (owner, name) = s.trim().split_once('/').ok_or_else(bad)?;
        if !valid_name(owner) || !valid_name(name) {
            return Err(bad());
        }
        Ok(Repo {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A user, organisation or repository name: letters, digits, `-`, `_`, `.` (never `.`/`..`).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Which issues to list (`GET /repos/{owner}/{repo}/issues`).
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    /// `open` (GitHub's default), `closed` or `all`.
    pub state: Option<String>,
    /// Only issues with every one of these labels.
    pub labels: Vec<String>,
    /// Only issues updated at or after this time (RFC 3339, seconds).
    pub since: Option<String>,
    /// Keep pull requests (GitHub lists them among the issues).
    pub include_prs: bool,
}

/// A new issue.
#[derive(Debug, Clone, Default)]
pub struct NewIssue {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    /// The key that makes creating it idempotent: the same key never creates a second issue
    /// in the newest 100 of the repository. A random one when `None` (retries stay safe).
    pub idempotency_key: Option<String>,
}

/// What [`GitHub::create_issue`] did.
#[derive(Debug, Clone)]
pub struct Created {
    /// The issue as GitHub returns it.
    pub issue: Value,
    /// It existed already (same idempotency key): nothing was created.
    pub existed: bool,
    /// How many times it was sent.
    pub attempts: u32,
}

/// A client of the GitHub REST API.
#[derive(Debug, Clone)]
pub struct GitHub {
    client: Client,
    /// Longest wait for the quota to reset before a page; beyond it, [`Error::RateLimited`].
    quota_wait: Duration,
}

impl GitHub {
    /// A client of `base_url` (`https://api.github.com`, or GHES' `https://HOST/api/v3`);
    /// `config`'s auth (a `Bearer` token), deadlines, retries, cache and TLS apply. GitHub's
    /// media type and API version headers are added unless `config` sets them.
    pub fn new(base_url: &str, mut config: ClientConfig) -> Result<Self, Error> {
        config.base_url = Some(base_url.to_owned());
        for (k, v) in [
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", API_VERSION),
        ] {
            if !config
                .default_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(k))
            {
                config.default_headers.push((k.into(), v.into()));
            }
        }
        let quota_wait = config.rate_limit.max_pause;
        Ok(GitHub {
            client: Client::new(config)?,
            quota_wait,
        })
    }

    /// The engine client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The issues of `repo`, page by page (pull requests left out unless
    /// [`IssueFilter::include_prs`]), in GitHub's order (newest first).
    pub fn issues(
        &self,
        repo: &Repo,
        filter: &IssueFilter,
    ) -> impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static {
        let mut query = vec![("per_page".to_owned(), PER_PAGE.to_owned())];
        if let Some(s) = &filter.state {
            query.push(("state".into(), s.clone()));
        }
        if !filter.labels.is_empty() {
            query.push(("labels".into(), filter.labels.join(",")));
        }
        if let Some(s) = &filter.since {
            query.push(("since".into(), s.clone()));
        }
        let include_prs = filter.include_prs;
        let pages = self.pages(format!("repos/{}/{}/issues", repo.owner, repo.name), query);
        futures::StreamExt::map(pages, move |page| {
            page.map(|items| {
                items
                    .into_iter()
                    .filter(|i| include_prs || !is_pull_request(i))
                    .collect()
            })
        })
    }

    /// The repositories of an organisation, or of a user when `owner` is no organisation,
    /// page by page.
    pub async fn repos(
        &self,
        owner: &str,
    ) -> Result<impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static, Error> {
        if !valid_name(owner) {
            return Err(Error::InvalidInput(format!(
                "`{owner}` is not a user or organisation name"
            )));
        }
        // one request says which: GET /users/{name} has "type": "Organization" or "User"
        let resp = self.client.get(&format!("users/{owner}")).send().await?;
        let who = json_or_error(resp).await?;
        let path = if who.get("type").and_then(Value::as_str) == Some("Organization") {
            format!("orgs/{owner}/repos")
        } else {
            format!("users/{owner}/repos")
        };
        Ok(self.pages(path, vec![("per_page".into(), PER_PAGE.into())]))
    }

    /// Any GET endpoint (`repos/o/r/pulls`, `/rate_limit`), every page: a list's items, or
    /// the one object an endpoint returns.
    pub fn get_all(
        &self,
        path: &str,
    ) -> impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static {
        self.pages(path.trim_start_matches('/').to_owned(), Vec::new())
    }

    /// Creates an issue, safely: GitHub has no idempotency key, so the body carries a hidden
    /// marker with one, and after an answer that may have been lost (a timeout, a broken
    /// connection, a 5xx, a secondary rate limit) the newest issues are searched for it before
    /// sending again. With a caller's key, an issue that already has it is returned as it is.
    pub async fn create_issue(
        &self,
        repo: &Repo,
        issue: &NewIssue,
        attempts: u32,
    ) -> Result<Created, Error> {
        if issue.title.trim().is_empty() {
            return Err(Error::InvalidInput("the issue title is empty".into()));
        }
        let key = issue
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if key.contains("-->") || key.contains('\n') {
            return Err(Error::InvalidInput(
                "the idempotency key may not contain `-->` or a newline".into(),
            ));
        }
        let marker = format!("{MARKER_PREFIX}{key} -->");
        if issue.idempotency_key.is_some()
            && let Some(found) = self.find_marked(repo, &marker).await?
        {
            return Ok(Created {
                issue: found,
                existed: true,
                attempts: 0,
            });
        }
        let mut body_text = issue.body.clone();
        if !body_text.is_empty() {
            body_text.push_str("\n\n");
        }
        body_text.push_str(&marker);
        let mut payload = json!({"title": issue.title, "body": body_text});
        if !issue.labels.is_empty() {
            payload["labels"] = json!(issue.labels);
        }
        let path = format!("repos/{}/{}/issues", repo.owner, repo.name);
        let attempts = attempts.max(1);
        let mut last: Option<Error> = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                // the last answer may have been lost after GitHub created the issue
                if let Some(found) = self.find_marked(repo, &marker).await? {
                    return Ok(Created {
                        issue: found,
                        existed: false,
                        attempts: attempt - 1,
                    });
                }
            }
            let outcome = self
                .client
                .request(Method::POST, &path)
                .json(&payload)
                .send()
                .await;
            let wait = match outcome {
                Ok(resp) if resp.status().as_u16() == 201 => {
                    let issue = resp.json::<Value>().await?;
                    return Ok(Created {
                        issue,
                        existed: false,
                        attempts: attempt,
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry_after(resp.headers());
                    let err = error_of(resp).await;
                    let again = status >= 500
                        || (matches!(status, 403 | 429)
                            && matches!(err, Error::RateLimited { .. })
                            && retry_after.is_some());
                    if !again {
                        return Err(err);
                    }
                    last = Some(err);
                    retry_after.unwrap_or_else(|| backoff(attempt))
                }
                Err(e) if e.is_connection() || e.is_timeout() => {
                    last = Some(Error::Http(e));
                    backoff(attempt)
                }
                Err(e) => return Err(Error::Http(e)),
            };
            if attempt < attempts {
                tracing::info!(attempt, wait = ?wait, "issue creation not confirmed; checking before sending again");
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
            }
        }
        // the last attempt's answer may be lost too: one more look before giving up
        if let Some(found) = self.find_marked(repo, &marker).await? {
            return Ok(Created {
                issue: found,
                existed: false,
                attempts,
            });
        }
        Err(last.unwrap_or_else(|| Error::InvalidInput("no attempt was made".into())))
    }

    /// The newest issue (of the newest 100, any state) whose body holds `marker`.
    async fn find_marked(&self, repo: &Repo, marker: &str) -> Result<Option<Value>, Error> {
        let resp = self
            .client
            .get(&format!("repos/{}/{}/issues", repo.owner, repo.name))
            .query_pair("state", "all")
            .query_pair("sort", "created")
            .query_pair("direction", "desc")
            .query_pair("per_page", PER_PAGE)
            .send()
            .await?;
        let page = json_or_error(resp).await?;
        Ok(page.as_array().and_then(|items| {
            items
                .iter()
                .find(|i| {
                    !is_pull_request(i)
                        && i.get("body")
                            .and_then(Value::as_str)
                            .is_some_and(|b| b.contains(marker))
                })
                .cloned()
        }))
    }

    /// Every page of `path` through the `Link: rel="next"` header.
    fn pages(
        &self,
        path: String,
        query: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static {
        struct St {
            client: Client,
            quota_wait: Duration,
            next: Option<Next>,
            origin: Option<url::Origin>,
            seen: std::collections::HashSet<String>,
            /// An error found after a page: reported after its items.
            pending: Option<Error>,
        }
        enum Next {
            First(String, Vec<(String, String)>),
            Url(Url),
        }
        let st = St {
            client: self.client.clone(),
            quota_wait: self.quota_wait,
            next: Some(Next::First(path, query)),
            origin: None,
            seen: Default::default(),
            pending: None,
        };
        futures::stream::try_unfold(st, |mut st| async move {
            if let Some(e) = st.pending.take() {
                return Err(e);
            }
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
            let headers = resp.headers().clone();
            let body = json_or_error(resp).await?;
            if st.origin.is_none() {
                st.origin = Some(url.origin());
            }
            let items = match body {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                other => vec![other],
            };
            if let Some(next) = opskit_http::next_link(&headers, &url) {
                if st.origin.as_ref().is_some_and(|o| *o != next.origin()) {
                    return Err(Error::Decode {
                        url: url.to_string(),
                        message: format!(
                            "the next page is on another origin ({}); not following it with the token",
                            next.origin().ascii_serialization()
                        ),
                    });
                }
                if !st.seen.insert(next.to_string()) {
                    return Err(Error::Decode {
                        url: url.to_string(),
                        message: "the same next page was given twice; stopping".into(),
                    });
                }
                // the quota is used up: wait for its reset when that is soon, else say when
                if let Some(reset) = exhausted_until(&headers) {
                    let left = reset.duration_since(SystemTime::now()).unwrap_or_default();
                    if left > st.quota_wait {
                        st.pending = Some(Error::RateLimited {
                            api: API,
                            resets_at: Some(reset),
                            message: "x-ratelimit-remaining is 0 and pages are left".into(),
                        });
                        return Ok(Some((items, st)));
                    }
                }
                st.next = Some(Next::Url(next));
            }
            Ok(Some((items, st)))
        })
    }
}

/// Whether an item of an issues list is a pull request (it has a `pull_request` object).
pub fn is_pull_request(issue: &Value) -> bool {
    issue.get("pull_request").is_some_and(|p| !p.is_null())
}

/// The body as JSON on success; GitHub's error otherwise.
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

/// When the primary quota resets, if these headers say it is used up.
fn exhausted_until(headers: &HeaderMap) -> Option<SystemTime> {
    let get = |n: &str| headers.get(n)?.to_str().ok()?.trim().parse::<u64>().ok();
    if get("x-ratelimit-remaining")? != 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(get("x-ratelimit-reset")?))
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

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6)))
}

/// GitHub's error for a non-success answer: a used-up quota (primary: remaining 0; secondary:
/// a `retry-after`) as [`Error::RateLimited`], else its error document
/// `{message, errors[], documentation_url}` as [`Error::Api`].
async fn error_of(resp: Response) -> Error {
    let status = resp.status();
    let headers = resp.headers().clone();
    let url = resp.url().to_string();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Error::Http(e),
    };
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = doc
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_owned();
            if text.is_empty() {
                format!("HTTP {status} from {url}")
            } else {
                text
            }
        });
    if matches!(status.as_u16(), 403 | 429) {
        if let Some(reset) = exhausted_until(&headers) {
            return Error::RateLimited {
                api: API,
                resets_at: Some(reset),
                message,
            };
        }
        if let Some(wait) = retry_after(&headers) {
            return Error::RateLimited {
                api: API,
                resets_at: Some(SystemTime::now() + wait),
                message,
            };
        }
    }
    let details = doc
        .get("errors")
        .and_then(Value::as_array)
        .map(|errs| {
            errs.iter()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    e => {
                        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                        let mut s = format!(
                            "{} {}: {}",
                            field("resource"),
                            field("field"),
                            field("code")
                        );
                        if !field("message").is_empty() {
                            s.push_str(&format!(" ({})", field("message")));
                        }
                        s.trim().to_owned()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Error::Api {
        api: API,
        status: status.as_u16(),
        kind: status.canonical_reason().unwrap_or("error").to_owned(),
        message,
        details,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn repo_names() {
        let r: Repo = "rust-lang/rust".parse().unwrap();
        assert_eq!((r.owner.as_str(), r.name.as_str()), ("rust-lang", "rust"));
        assert_eq!(r.to_string(), "rust-lang/rust");
        for bad in ["rust", "a/b/c", "/x", "a/", "a/..", "a b/c", "a/b?x=1"] {
            assert!(bad.parse::<Repo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_requests_are_told_apart() {
        assert!(is_pull_request(
            &json!({"number": 1, "pull_request": {"url": "u"}})
        ));
        assert!(!is_pull_request(&json!({"number": 2})));
        assert!(!is_pull_request(
            &json!({"number": 3, "pull_request": null})
        ));
    }

    #[test]
    fn used_up_quota() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset", "1796050000".parse().unwrap());
        assert_eq!(
            exhausted_until(&h),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_050_000))
        );
        h.insert("x-ratelimit-remaining", "12".parse().unwrap());
        assert_eq!(exhausted_until(&h), None);
    }
}
