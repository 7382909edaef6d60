//! Jira: Cloud REST API v3 (rich text as ADF, Basic `email:api_token`) and Data Center / Server
//! REST API v2 (plain-string rich text, a personal access token as `Bearer`), as the seeds'
//! `create_jira_ticket` uses it and more: issues created, read, searched (every page), commented
//! and moved through their workflow by transition name.
//!
//! Jira's wire format lives once, in [`opskit_notify::jira`] and [`opskit_notify::adf`]: the
//! create body, ADF, the credential, issue keys, JQL strings and the error body are the ones
//! `opskit notify jira` sends and reads; this module adds the calls `opskit notify` does not need.
//!
//! Retries: reads are retried like any GET (429 with `Retry-After`, 5xx, timeouts). A create is
//! sent again after a 429 (Jira did not act on it) or a failed connection (nothing was sent);
//! after an answer that may have been lost (a timeout, a broken connection, a 5xx) the project's
//! issues created in the last 15 minutes with the same summary are searched first, and one found
//! is returned instead of creating a twin. Jira's search is eventually consistent, so an issue
//! created a moment ago may not be found yet: a twin stays possible in that window. Comments and
//! transitions are sent again only after a 429.
//!
//! ```no_run
//! # async fn demo() -> Result<(), opskit_apis::Error> {
//! use opskit_apis::jira::{Jira, Credential, Deployment, IssueRequest};
//! let jira = Jira::new(
//!     "https://example.atlassian.net",
//!     Some(Credential::Basic {
//!         user: "ops@example.com".into(),
//!         secret: opskit_http::Secret::env("JIRA_API_TOKEN"),
//!     }),
//!     Deployment::Cloud,
//!     opskit_http::ClientConfig::default(),
//! )?;
//! let mut req = IssueRequest::new("OPS", "[ALERT] db-prod-02 - high CPU");
//! req.description = Some("CPU above 95% for 10 minutes".into());
//! let created = jira.create_issue(&req, 3).await?;
//! println!("{} {}", created.issue.key, jira.browse_url(&created.issue.key));
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use futures::Stream;
use opskit_http::{Client, ClientConfig, HeaderMap, Method, Response};
use serde::Deserialize;
use serde_json::{Value, json};

pub use opskit_notify::jira::{CreatedIssue, Credential, Deployment, IssueRequest};
use opskit_notify::jira::{check_issue_key, error_summary, jql_string};

use crate::error::Error;

const API: &str = "Jira";

/// Issues asked for per search page (Jira may return fewer).
const PAGE_SIZE: u32 = 100;

/// The fields a search or a read asks for unless told otherwise.
pub const DEFAULT_FIELDS: &[&str] = &[
    "summary",
    "status",
    "issuetype",
    "priority",
    "assignee",
    "reporter",
    "labels",
    "created",
    "updated",
];

/// What [`Jira::create_issue`] did.
#[derive(Debug, Clone)]
pub struct Created {
    /// `{id, key, self}`.
    pub issue: CreatedIssue,
    /// How many times the create was sent.
    pub attempts: u32,
    /// The answer was lost and the issue was found by a search instead.
    pub recovered: bool,
}

/// One transition of an issue's workflow (`GET …/issue/{key}/transitions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    /// The status it leads to.
    #[serde(default)]
    pub to: Option<Status>,
}

/// A workflow status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub id: String,
    pub name: String,
}

/// A client of one Jira site.
#[derive(Debug, Clone)]
pub struct Jira {
    client: Client,
    site: String,
    deployment: Deployment,
}

impl Jira {
    /// A client of the site `site_url` (`https://example.atlassian.net`, or a Data Center base
    /// such as `https://jira.example.com/jira`); `config`'s deadlines, retries, rate limit and TLS
    /// apply, and `credential`, when given, replaces its auth.
    pub fn new(
        site_url: &str,
        credential: Option<Credential>,
        deployment: Deployment,
        mut config: ClientConfig,
    ) -> Result<Self, Error> {
        let site = site_url.trim_end_matches('/').to_owned();
        config.base_url = Some(format!("{site}/{}/", deployment.api_prefix()));
        if let Some(c) = credential {
            config.auth = c.auth();
        }
        if !config
            .default_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
        {
            config
                .default_headers
                .push(("Accept".into(), "application/json".into()));
        }
        // the last answer of a retried 429/5xx is returned, so Jira's error body is shown
        config.retry.raise_on_status = false;
        Ok(Jira {
            client: Client::new(config)?,
            site,
            deployment,
        })
    }

    /// The engine client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Cloud or Data Center.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// `https://site/browse/KEY`.
    pub fn browse_url(&self, key: &str) -> String {
        opskit_notify::jira::browse_url(&self.site, key)
    }

    /// One issue with `fields` (every field when empty).
    pub async fn issue(&self, key: &str, fields: &[&str]) -> Result<Value, Error> {
        check_key(key)?;
        let mut rb = self.client.get(&format!("issue/{key}"));
        if !fields.is_empty() {
            rb = rb.query_pair("fields", fields.join(","));
        }
        json_or_error(rb.send().await?).await
    }

    /// The issues matching `jql`, page by page, with `fields` (Jira returns only the id and key
    /// without them). Cloud pages with `nextPageToken` (`/search/jql`), Data Center with
    /// `startAt` (`/search`). At most `limit` issues when given.
    pub fn search(
        &self,
        jql: &str,
        fields: &[&str],
        limit: Option<u64>,
    ) -> impl Stream<Item = Result<Vec<Value>, Error>> + Send + 'static {
        enum Cursor {
            Token(Option<String>),
            StartAt(u64),
            Done,
        }
        struct St {
            client: Client,
            deployment: Deployment,
            jql: String,
            fields: String,
            cursor: Cursor,
            left: Option<u64>,
            seen: std::collections::HashSet<String>,
        }
        let st = St {
            client: self.client.clone(),
            deployment: self.deployment,
            jql: jql.trim().to_owned(),
            fields: fields.join(","),
            cursor: match self.deployment {
                Deployment::Cloud => Cursor::Token(None),
                Deployment::DataCenter => Cursor::StartAt(0),
            },
            left: limit,
            seen: Default::default(),
        };
        futures::stream::try_unfold(st, |mut st| async move {
            if st.jql.is_empty() {
                return Err(Error::InvalidInput(
                    "the JQL is empty; Jira refuses unbounded searches (e.g. give project = OPS)"
                        .into(),
                ));
            }
            if matches!(st.cursor, Cursor::Done) || st.left == Some(0) {
                return Ok(None);
            }
            let size = st
                .left
                .map_or(PAGE_SIZE, |l| l.min(u64::from(PAGE_SIZE)) as u32);
            let path = match st.deployment {
                Deployment::Cloud => "search/jql",
                Deployment::DataCenter => "search",
            };
            let mut rb = st
                .client
                .get(path)
                .query_pair("jql", st.jql.clone())
                .query_pair("maxResults", size.to_string());
            if !st.fields.is_empty() {
                rb = rb.query_pair("fields", st.fields.clone());
            }
            match &st.cursor {
                Cursor::Token(Some(t)) => rb = rb.query_pair("nextPageToken", t.clone()),
                Cursor::StartAt(n) => rb = rb.query_pair("startAt", n.to_string()),
                _ => {}
            }
            let page = json_or_error(rb.send().await?).await?;
            let mut issues = match page.get("issues") {
                Some(Value::Array(a)) => a.clone(),
                _ => {
                    return Err(Error::Decode {
                        url: path.into(),
                        message: "no `issues` array in the search answer".into(),
                    });
                }
            };
            let got = issues.len() as u64;
            st.cursor = match (&st.cursor, st.deployment) {
                (_, Deployment::Cloud) => {
                    let token = page
                        .get("nextPageToken")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty());
                    let last = page.get("isLast").and_then(Value::as_bool) == Some(true);
                    match token {
                        Some(t) if !last => {
                            if !st.seen.insert(t.to_owned()) {
                                return Err(Error::Decode {
                                    url: path.into(),
                                    message: "the same nextPageToken was given twice; stopping"
                                        .into(),
                                });
                            }
                            Cursor::Token(Some(t.to_owned()))
                        }
                        _ => Cursor::Done,
                    }
                }
                (Cursor::StartAt(n), Deployment::DataCenter) => {
                    let total = page.get("total").and_then(Value::as_u64).unwrap_or(0);
                    if got == 0 || n + got >= total {
                        Cursor::Done
                    } else {
                        Cursor::StartAt(n + got)
                    }
                }
                _ => Cursor::Done,
            };
            if let Some(left) = st.left.as_mut() {
                issues.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                *left = left.saturating_sub(issues.len() as u64);
            }
            Ok(Some((issues, st)))
        })
    }

    /// Creates an issue; see the module text for what is sent again and when. `attempts` is
    /// the most times the create is sent (at least 1).
    pub async fn create_issue(&self, req: &IssueRequest, attempts: u32) -> Result<Created, Error> {
        req.validate()
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let body = req.create_body_for(self.deployment);
        let attempts = attempts.max(1);
        let mut lost = false;
        let mut last: Option<Error> = None;
        for attempt in 1..=attempts {
            if lost && let Some(found) = self.find_created(req).await? {
                return Ok(Created {
                    issue: found,
                    attempts: attempt - 1,
                    recovered: true,
                });
            }
            let outcome = self
                .client
                .request(Method::POST, "issue")
                .json(&body)
                .send()
                .await;
            let wait = match outcome {
                Ok(resp) if resp.status().as_u16() == 201 => {
                    let issue = resp.json::<CreatedIssue>().await?;
                    return Ok(Created {
                        issue,
                        attempts: attempt,
                        recovered: false,
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let wait = retry_after(resp.headers());
                    let err = error_of(resp).await;
                    if status == 429 {
                        lost = false;
                    } else if status >= 500 {
                        lost = true;
                    } else {
                        return Err(err);
                    }
                    last = Some(err);
                    wait.unwrap_or_else(|| backoff(attempt))
                }
                Err(e) if e.is_connection() => {
                    // a timeout or a broken connection may come after Jira acted
                    lost = true;
                    last = Some(Error::Http(e));
                    backoff(attempt)
                }
                Err(e) => return Err(Error::Http(e)),
            };
            if attempt < attempts {
                tracing::info!(attempt, ?wait, "issue creation not confirmed; trying again");
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
            }
        }
        if lost && let Some(found) = self.find_created(req).await? {
            return Ok(Created {
                issue: found,
                attempts,
                recovered: true,
            });
        }
        Err(last.unwrap_or_else(|| Error::InvalidInput("no attempt was made".into())))
    }

    /// The newest issue of the project created in the last 15 minutes with exactly this summary
    /// (and every label of `req`).
    async fn find_created(&self, req: &IssueRequest) -> Result<Option<CreatedIssue>, Error> {
        let words: String = req
            .summary
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut jql = format!(
            "project = {} AND created >= \"-15m\"",
            jql_string(req.project.trim())
        );
        if !words.is_empty() {
            jql.push_str(&format!(" AND summary ~ {}", jql_string(&words)));
        }
        jql.push_str(" ORDER BY created DESC");
        let mut pages = std::pin::pin!(self.search(&jql, &["summary", "labels"], Some(50)));
        while let Some(page) = futures::TryStreamExt::try_next(&mut pages).await? {
            for issue in page {
                let summary = issue
                    .pointer("/fields/summary")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let labels: Vec<&str> = issue
                    .pointer("/fields/labels")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if summary.trim() == req.summary.trim()
                    && req.labels.iter().all(|l| labels.contains(&l.as_str()))
                {
                    let key = issue.get("key").and_then(Value::as_str).unwrap_or("");
                    return Ok(Some(CreatedIssue {
                        id: issue
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        key: key.to_owned(),
                        self_url: issue
                            .get("self")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Adds a comment (plain text; ADF on Cloud) and returns Jira's comment object.
    pub async fn comment(&self, key: &str, text: &str) -> Result<Value, Error> {
        check_key(key)?;
        if text.trim().is_empty() {
            return Err(Error::InvalidInput("the comment is empty".into()));
        }
        let body = json!({ "body": self.deployment.rich_text(text) });
        let resp = self.write(&format!("issue/{key}/comment"), &body).await?;
        json_or_error(resp).await
    }

    /// The transitions the caller may make on the issue now.
    pub async fn transitions(&self, key: &str) -> Result<Vec<Transition>, Error> {
        check_key(key)?;
        let path = format!("issue/{key}/transitions");
        let doc = json_or_error(self.client.get(&path).send().await?).await?;
        let list = doc.get("transitions").cloned().unwrap_or(json!([]));
        serde_json::from_value(list).map_err(|e| Error::Decode {
            url: path,
            message: format!("the transitions: {e}"),
        })
    }

    /// Moves the issue by the transition named `to` (or, failing that, the one leading to the
    /// status named `to`; case does not matter). An unknown name is [`Error::InvalidInput`]
    /// listing the transitions there are.
    pub async fn transition(&self, key: &str, to: &str) -> Result<Transition, Error> {
        let all = self.transitions(key).await?;
        let chosen = pick_transition(&all, to)
            .map_err(|message| Error::InvalidInput(format!("{key}: {message}")))?;
        let body = json!({ "transition": { "id": chosen.id } });
        let resp = self
            .write(&format!("issue/{key}/transitions"), &body)
            .await?;
        json_or_error(resp).await?;
        Ok(chosen)
    }

    /// A POST that is sent again only after a 429 (Jira did not act on it).
    async fn write(&self, path: &str, body: &Value) -> Result<Response, Error> {
        let mut attempt = 1;
        loop {
            let resp = self.client.post(path).json(body).send().await?;
            if resp.status().as_u16() == 429 && attempt < 4 {
                let wait = retry_after(resp.headers()).unwrap_or_else(|| backoff(attempt));
                if wait <= Duration::from_secs(60) {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            }
            return Ok(resp);
        }
    }
}

/// The transition named `to`, else the one leading to status `to`; an error text listing the
/// choices otherwise.
pub fn pick_transition(all: &[Transition], to: &str) -> Result<Transition, String> {
    let want = to.trim();
    let by_name: Vec<&Transition> = all
        .iter()
        .filter(|t| t.name.trim().eq_ignore_ascii_case(want))
        .collect();
    let found: Vec<&Transition> = if by_name.is_empty() {
        all.iter()
            .filter(|t| {
                t.to.as_ref()
                    .is_some_and(|s| s.name.trim().eq_ignore_ascii_case(want))
            })
            .collect()
    } else {
        by_name
    };
    let list = || {
        if all.is_empty() {
            "none (the workflow allows no transition now, or you may not make one)".to_owned()
        } else {
            all.iter()
                .map(|t| match &t.to {
                    Some(s) => format!("\"{}\" (→ {})", t.name, s.name),
                    None => format!("\"{}\"", t.name),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no transition named \"{want}\"; available: {}",
            list()
        )),
        many => Err(format!(
            "\"{want}\" matches {} transitions ({}); give the transition's own name",
            many.len(),
            many.iter()
                .map(|t| format!("\"{}\" id {}", t.name, t.id))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    check_issue_key(key).map_err(|e| Error::InvalidInput(e.to_string()))
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

/// The body as JSON on success (`null` for 204); Jira's error otherwise.
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

/// Jira's error for a non-success answer: the `ErrorCollection` (`{"errorMessages":[…],
/// "errors":{field: message}}`) as [`Error::Api`], a 429 as [`Error::RateLimited`].
async fn error_of(resp: Response) -> Error {
    let status = resp.status();
    let headers = resp.headers().clone();
    let url = resp.url().to_string();
    let body = match resp.text().await {
        Ok(b) => b,
        Err(e) => return Error::Http(e),
    };
    let message = error_summary(&body).unwrap_or_else(|| {
        let text: String = body.trim().chars().take(300).collect();
        if text.is_empty() {
            format!("HTTP {status} from {url}")
        } else {
            text
        }
    });
    if status.as_u16() == 429 {
        return Error::RateLimited {
            api: API,
            resets_at: retry_after(&headers).map(|w| SystemTime::now() + w),
            message,
        };
    }
    Error::Api {
        api: API,
        status: status.as_u16(),
        kind: status.canonical_reason().unwrap_or("error").to_owned(),
        message,
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(id: &str, name: &str, to: &str) -> Transition {
        Transition {
            id: id.into(),
            name: name.into(),
            to: Some(Status {
                id: String::new(),
                name: to.into(),
            }),
        }
    }

    #[test]
    fn transitions_by_name_then_by_status() {
        let all = [
            t("11", "Start Progress", "In Progress"),
            t("31", "Close", "Done"),
        ];
        assert_eq!(pick_transition(&all, "start progress").unwrap().id, "11");
        assert_eq!(pick_transition(&all, "Done").unwrap().id, "31");
        let e = pick_transition(&all, "Resolved").unwrap_err();
        assert_eq!(
            e,
            "no transition named \"Resolved\"; available: \"Start Progress\" (→ In Progress), \"Close\" (→ Done)"
        );
    }
}
