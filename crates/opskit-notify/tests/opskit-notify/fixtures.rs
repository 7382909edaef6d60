//! Local servers standing in for Slack, Teams and Jira (which cannot be reached from here) and for
//! any webhook receiver. Each checks every request against the vendor's documented format, field
//! by field, answers the way the vendor answers, and can be told to fail (500, 429 with
//! `Retry-After`, a hang past the client's timeout) to exercise retries.
//!
//! Formats checked:
//! - Slack incoming webhooks + legacy attachments: <https://api.slack.com/messaging/webhooks>,
//!   <https://api.slack.com/reference/messaging/attachments>; answers `200 ok` (text/plain),
//!   `400 invalid_payload`.
//! - Teams Workflows webhook: a `message` whose attachments carry
//!   `application/vnd.microsoft.card.adaptive` content, an Adaptive Card (schema ≤ 1.5 in Teams);
//!   answers `202 Accepted`. Legacy connector MessageCard (`@type`, `@context`, `summary`/`text`,
//!   `themeColor`, `sections[].facts[]`); answers `200 1`.
//! - Jira Cloud REST v3: Basic auth `email:token`, `Accept`/`Content-Type: application/json`,
//!   `POST /rest/api/3/issue`, `POST /rest/api/3/search/jql`, `POST /rest/api/3/issue/{key}/comment`,
//!   Atlassian Document Format bodies; errors as `{"errorMessages":[],"errors":{}}`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

/// Which service the fixture plays.
#[derive(Debug, Clone)]
pub enum Vendor {
    Slack,
    TeamsWorkflows,
    TeamsConnector,
    Jira {
        email: String,
        token: String,
    },
    /// Any endpoint: accepts every JSON POST with `204`.
    Webhook,
}

/// A failure to answer with instead of the normal response (one per request, in order).
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status, with a vendor-like body.
    Status(u16),
    /// `429 Too Many Requests` with `Retry-After: secs`.
    RetryAfter(u64),
    /// Say nothing for this long (longer than the client's timeout).
    Hang(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Debug, Clone)]
pub struct JiraIssue {
    pub key: String,
    pub project: String,
    pub summary: String,
    pub labels: Vec<String>,
    pub done: bool,
    pub comments: Vec<Value>,
}

struct Inner {
    vendor: Vendor,
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<Recorded>>,
    violations: Mutex<Vec<String>>,
    issues: Mutex<Vec<JiraIssue>>,
    base: Mutex<String>,
    legacy_search: std::sync::atomic::AtomicBool,
}

/// A running fixture on `127.0.0.1:<random port>`; it stops with the runtime it was started on.
#[derive(Clone)]
pub struct Fixture {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Fixture {
    pub async fn start(vendor: Vendor) -> Fixture {
        let inner = Arc::new(Inner {
            vendor,
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            issues: Mutex::new(Vec::new()),
            base: Mutex::new(String::new()),
            legacy_search: std::sync::atomic::AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *inner.base.lock().unwrap() = format!("http://{addr}");
        let app = Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fixture { addr, inner }
    }

    /// `http://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.faults.lock().unwrap().extend(faults);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    /// Panics with every format violation seen so far.
    pub fn assert_valid(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "requests broke the vendor's format:\n{}",
            v.join("\n")
        );
    }

    pub fn seed_issue(&self, key: &str, summary: &str, labels: &[&str], done: bool) {
        let project = key.split('-').next().unwrap_or_default().to_owned();
        self.inner.issues.lock().unwrap().push(JiraIssue {
            key: key.into(),
            project,
            summary: summary.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            done,
            comments: Vec::new(),
        });
    }

    /// Play a Jira without `/rest/api/3/search/jql` (only the older `/rest/api/3/search`).
    pub fn legacy_search_only(&self) {
        self.inner
            .legacy_search
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn issues(&self) -> Vec<JiraIssue> {
        self.inner.issues.lock().unwrap().clone()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: body.clone(),
        at: Instant::now(),
    });
    let fault = inner.faults.lock().unwrap().pop_front();
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (status, format!("fixture fault: {code}")).into_response();
        }
        Some(Fault::RetryAfter(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                "rate_limited",
            )
                .into_response();
        }
        Some(Fault::Hang(d)) => {
            tokio::time::sleep(d).await;
        }
        None => {}
    }
    let mut problems = Vec::new();
    let response = match &inner.vendor {
        Vendor::Slack => slack(&method, &headers, &body, &mut problems),
        Vendor::TeamsWorkflows => teams_workflows(&method, &headers, &body, &mut problems),
        Vendor::TeamsConnector => teams_connector(&method, &headers, &body, &mut problems),
        Vendor::Jira { email, token } => {
            let base = inner.base.lock().unwrap().clone();
            jira(
                &inner,
                email,
                token,
                &base,
                &method,
                uri.path(),
                &headers,
                &body,
                &mut problems,
            )
        }
        Vendor::Webhook => {
            check_json_post(&method, &headers, &body, &mut problems);
            StatusCode::NO_CONTENT.into_response()
        }
    };
    if !problems.is_empty() {
        inner.violations.lock().unwrap().extend(
            problems
                .iter()
                .map(|p| format!("{method} {}: {p}", uri.path())),
        );
    }
    response
}

fn check_json_post(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    p: &mut Vec<String>,
) -> Option<Value> {
    if method != Method::POST {
        p.push(format!("method is {method}, expected POST"));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        p.push(format!("Content-Type is {ct:?}, expected application/json"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Some(v),
        Ok(_) => {
            p.push("body is JSON but not an object".into());
            None
        }
        Err(e) => {
            p.push(format!("body is not JSON: {e}"));
            None
        }
    }
}

fn only_keys(obj: &Value, allowed: &[&str], what: &str, p: &mut Vec<String>) {
    if let Some(map) = obj.as_object() {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                p.push(format!("{what}: unknown key {k:?}"));
            }
        }
    } else {
        p.push(format!("{what} is not an object"));
    }
}

fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

// ---------------------------------------------------------------- Slack

fn slack(method: &Method, headers: &HeaderMap, body: &[u8], p: &mut Vec<String>) -> Response {
    if let Some(v) = check_json_post(method, headers, body, p) {
        check_slack_payload(&v, p);
    }
    if p.is_empty() {
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
    } else {
        (StatusCode::BAD_REQUEST, "invalid_payload").into_response()
    }
}

/// Slack's message format: `text` (required without attachments or blocks), the legacy
/// webhook overrides (`channel`, `username`, `icon_emoji` / `icon_url`), and the attachment
/// format field by field.
pub fn check_slack_payload(v: &Value, p: &mut Vec<String>) {
    only_keys(
        v,
        &[
            "text",
            "attachments",
            "blocks",
            "channel",
            "username",
            "icon_emoji",
            "icon_url",
            "mrkdwn",
            "unfurl_links",
            "unfurl_media",
            "thread_ts",
        ],
        "message",
        p,
    );
    if v.get("text").is_some_and(|t| !t.is_string()) {
        p.push("`text` is not a string".into());
    }
    for key in ["channel", "username"] {
        match v.get(key) {
            None => {}
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(other) => p.push(format!("`{key}` {other} is not a non-empty string")),
        }
    }
    match v.get("channel").and_then(Value::as_str) {
        Some(c) if c.contains(char::is_whitespace) => {
            p.push(format!("`channel` {c:?} holds a space"));
        }
        _ => {}
    }
    match v.get("icon_emoji") {
        None => {}
        Some(Value::String(e))
            if e.len() > 2
                && e.starts_with(':')
                && e.ends_with(':')
                && !e[1..e.len() - 1].contains([':', ' ']) => {}
        Some(other) => p.push(format!(
            "`icon_emoji` {other} is not an emoji code like :smile:"
        )),
    }
    if v.get("attachments").is_none() && v.get("blocks").is_none() {
        // a plain message: `text` is what Slack shows
        match v.get("text").and_then(Value::as_str) {
            Some(t) if !t.trim().is_empty() => {}
            _ => p.push("`text` is required (and non-empty) without attachments or blocks".into()),
        }
        return;
    }
    let Some(atts) = v.get("attachments").and_then(Value::as_array) else {
        p.push("`attachments` is missing or not an array".into());
        return;
    };
    if atts.is_empty() {
        p.push("`attachments` is empty".into());
    }
    for a in atts {
        only_keys(
            a,
            &[
                "fallback",
                "color",
                "pretext",
                "author_name",
                "author_link",
                "author_icon",
                "title",
                "title_link",
                "text",
                "fields",
                "image_url",
                "thumb_url",
                "footer",
                "footer_icon",
                "ts",
                "mrkdwn_in",
            ],
            "attachment",
            p,
        );
        match a.get("fallback").and_then(Value::as_str) {
            Some(s) if !s.is_empty() => {}
            _ => p.push("attachment `fallback` (plain-text summary) missing".into()),
        }
        match a.get("color").and_then(Value::as_str) {
            Some(c) if is_hex_color(c) || ["good", "warning", "danger"].contains(&c) => {}
            other => p.push(format!(
                "attachment `color` {other:?} is not #RRGGBB/good/warning/danger"
            )),
        }
        for key in ["title", "text", "footer"] {
            if a.get(key).is_some_and(|x| !x.is_string()) {
                p.push(format!("attachment `{key}` is not a string"));
            }
        }
        match a.get("ts") {
            None => {}
            Some(ts) if ts.as_i64().is_some_and(|t| t > 1_000_000_000) => {}
            Some(ts) => p.push(format!("attachment `ts` {ts} is not an epoch time")),
        }
        if let Some(fields) = a.get("fields") {
            let Some(fields) = fields.as_array() else {
                p.push("attachment `fields` is not an array".into());
                continue;
            };
            for f in fields {
                only_keys(f, &["title", "value", "short"], "field", p);
                if !f.get("title").is_some_and(Value::is_string) {
                    p.push("field `title` is not a string".into());
                }
                if !f.get("value").is_some_and(Value::is_string) {
                    p.push("field `value` is not a string".into());
                }
                if f.get("short").is_some_and(|s| !s.is_boolean()) {
                    p.push("field `short` is not a boolean".into());
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Teams

fn teams_workflows(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    p: &mut Vec<String>,
) -> Response {
    if let Some(v) = check_json_post(method, headers, body, p) {
        check_teams_message(&v, p);
    }
    if p.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error":{"code":"InvalidRequestContent","message":"The input body for trigger 'manual' of type 'Request' did not match its schema definition."}})),
        )
            .into_response()
    }
}

struct Json(Value);
impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// A Workflows message carrying Adaptive Cards.
pub fn check_teams_message(v: &Value, p: &mut Vec<String>) {
    if v.get("type").and_then(Value::as_str) != Some("message") {
        p.push("`type` is not \"message\"".into());
    }
    let Some(atts) = v.get("attachments").and_then(Value::as_array) else {
        p.push("`attachments` is missing".into());
        return;
    };
    if atts.is_empty() {
        p.push("`attachments` is empty".into());
    }
    for a in atts {
        if a.get("contentType").and_then(Value::as_str)
            != Some("application/vnd.microsoft.card.adaptive")
        {
            p.push(
                "attachment `contentType` is not application/vnd.microsoft.card.adaptive".into(),
            );
        }
        match a.get("content") {
            Some(card) => check_adaptive_card(card, p),
            None => p.push("attachment `content` is missing".into()),
        }
    }
}

pub fn check_adaptive_card(card: &Value, p: &mut Vec<String>) {
    if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
        p.push("card `type` is not AdaptiveCard".into());
    }
    match card.get("version").and_then(Value::as_str) {
        Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5") => {}
        other => p.push(format!(
            "card `version` {other:?} is not one Teams renders (1.0–1.5)"
        )),
    }
    match card.get("body").and_then(Value::as_array) {
        Some(body) if !body.is_empty() => body.iter().for_each(|e| check_element(e, p)),
        _ => p.push("card `body` is missing or empty".into()),
    }
}

fn one_of(v: Option<&Value>, allowed: &[&str], what: &str, p: &mut Vec<String>) {
    if let Some(v) = v {
        match v.as_str() {
            Some(s) if allowed.iter().any(|a| a.eq_ignore_ascii_case(s)) => {}
            _ => p.push(format!("{what} {v} is not one of {allowed:?}")),
        }
    }
}

fn check_element(e: &Value, p: &mut Vec<String>) {
    match e.get("type").and_then(Value::as_str) {
        Some("TextBlock") => {
            match e.get("text").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => {}
                _ => p.push("TextBlock `text` missing or empty".into()),
            }
            one_of(
                e.get("color"),
                &[
                    "default",
                    "dark",
                    "light",
                    "accent",
                    "good",
                    "warning",
                    "attention",
                ],
                "TextBlock color",
                p,
            );
            one_of(
                e.get("size"),
                &["default", "small", "medium", "large", "extraLarge"],
                "TextBlock size",
                p,
            );
            one_of(
                e.get("weight"),
                &["default", "lighter", "bolder"],
                "TextBlock weight",
                p,
            );
            for b in ["wrap", "isSubtle"] {
                if e.get(b).is_some_and(|x| !x.is_boolean()) {
                    p.push(format!("TextBlock `{b}` is not a boolean"));
                }
            }
        }
        Some("FactSet") => match e.get("facts").and_then(Value::as_array) {
            Some(facts) => {
                for f in facts {
                    only_keys(f, &["title", "value"], "fact", p);
                    if !f.get("title").is_some_and(Value::is_string)
                        || !f.get("value").is_some_and(Value::is_string)
                    {
                        p.push("fact needs string `title` and `value`".into());
                    }
                }
            }
            None => p.push("FactSet `facts` missing".into()),
        },
        Some("Container") => {
            one_of(
                e.get("style"),
                &[
                    "default",
                    "emphasis",
                    "good",
                    "attention",
                    "warning",
                    "accent",
                ],
                "Container style",
                p,
            );
            match e.get("items").and_then(Value::as_array) {
                Some(items) => items.iter().for_each(|i| check_element(i, p)),
                None => p.push("Container `items` missing".into()),
            }
        }
        other => p.push(format!("card element type {other:?} not expected")),
    }
}

fn teams_connector(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    p: &mut Vec<String>,
) -> Response {
    if let Some(v) = check_json_post(method, headers, body, p) {
        check_message_card(&v, p);
    }
    if p.is_empty() {
        (StatusCode::OK, "1").into_response()
    } else {
        (StatusCode::BAD_REQUEST, "Summary or Text is required.").into_response()
    }
}

/// The legacy connector MessageCard.
pub fn check_message_card(v: &Value, p: &mut Vec<String>) {
    if v.get("@type").and_then(Value::as_str) != Some("MessageCard") {
        p.push("`@type` is not MessageCard".into());
    }
    if !v
        .get("@context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.ends_with("schema.org/extensions"))
    {
        p.push("`@context` is not schema.org/extensions".into());
    }
    let has = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !has("summary") && !has("text") {
        p.push("`summary` or `text` is required".into());
    }
    if let Some(c) = v.get("themeColor") {
        let ok = c
            .as_str()
            .is_some_and(|s| s.len() == 6 && s.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            p.push(format!("`themeColor` {c} is not RRGGBB hex"));
        }
    }
    if let Some(sections) = v.get("sections") {
        for s in sections.as_array().into_iter().flatten() {
            for f in s
                .get("facts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                only_keys(f, &["name", "value"], "fact", p);
                if !f.get("name").is_some_and(Value::is_string)
                    || !f.get("value").is_some_and(Value::is_string)
                {
                    p.push("fact needs string `name` and `value`".into());
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Jira

fn jira_error(status: StatusCode, messages: &[&str], errors: Value) -> Response {
    (
        status,
        Json(json!({ "errorMessages": messages, "errors": errors })),
    )
        .into_response()
}

#[allow(clippy::too_many_arguments)]
fn jira(
    inner: &Inner,
    email: &str,
    token: &str,
    base: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    p: &mut Vec<String>,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"))
    );
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        p.push(format!(
            "Authorization is not Basic email:token (got {})",
            if auth.is_some() {
                "another value"
            } else {
                "none"
            }
        ));
        return (
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        )
            .into_response();
    }
    if headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| !a.contains("application/json"))
    {
        p.push("Accept is not application/json".into());
    }
    let Some(v) = check_json_post(method, headers, body, p) else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["body is not a JSON object"],
            json!({}),
        );
    };
    if path == "/rest/api/3/issue" {
        return jira_create(inner, base, &v, p);
    }
    let legacy = inner
        .legacy_search
        .load(std::sync::atomic::Ordering::SeqCst);
    if path == "/rest/api/3/search/jql" && legacy {
        return jira_error(
            StatusCode::NOT_FOUND,
            &["null for uri: /rest/api/3/search/jql"],
            json!({}),
        );
    }
    if path == "/rest/api/3/search/jql" || (path == "/rest/api/3/search" && legacy) {
        return jira_search(inner, &v, p);
    }
    if let Some(key) = path
        .strip_prefix("/rest/api/3/issue/")
        .and_then(|rest| rest.strip_suffix("/comment"))
    {
        match v.get("body") {
            Some(doc) => check_adf(doc, p),
            None => p.push("comment `body` missing".into()),
        }
        if !p.is_empty() {
            return jira_error(
                StatusCode::BAD_REQUEST,
                &[],
                json!({"comment": "Comment body can not be empty!"}),
            );
        }
        let mut issues = inner.issues.lock().unwrap();
        return match issues.iter_mut().find(|i| i.key == key) {
            Some(issue) => {
                issue.comments.push(v["body"].clone());
                let id = 10_000 + issue.comments.len();
                (StatusCode::CREATED, Json(json!({"id": id.to_string(), "self": format!("{base}/rest/api/3/issue/{key}/comment/{id}"), "body": v["body"]}))).into_response()
            }
            None => jira_error(
                StatusCode::NOT_FOUND,
                &["Issue does not exist or you do not have permission to see it."],
                json!({}),
            ),
        };
    }
    p.push(format!("no such Jira endpoint {path}"));
    StatusCode::NOT_FOUND.into_response()
}

fn jira_create(inner: &Inner, base: &str, v: &Value, p: &mut Vec<String>) -> Response {
    let Some(fields) = v.get("fields") else {
        p.push("`fields` missing".into());
        return jira_error(StatusCode::BAD_REQUEST, &["fields missing"], json!({}));
    };
    let mut errors = serde_json::Map::new();
    let project = fields
        .pointer("/project/key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if project.is_empty() {
        errors.insert("project".into(), json!("Specify a valid project ID or key"));
    }
    let summary = fields
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if summary.is_empty() || summary.chars().count() > 255 || summary.contains('\n') {
        errors.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    }
    if fields
        .pointer("/issuetype/name")
        .and_then(Value::as_str)
        .is_none()
        && fields
            .pointer("/issuetype/id")
            .and_then(Value::as_str)
            .is_none()
    {
        errors.insert("issuetype".into(), json!("Specify an issue type"));
    }
    if let Some(doc) = fields.get("description") {
        let before = p.len();
        check_adf(doc, p);
        if p.len() > before {
            errors.insert("description".into(), json!("Operation value must be an Atlassian Document (see the Atlassian Document Format)"));
        }
    }
    if let Some(pr) = fields.get("priority")
        && pr.get("name").and_then(Value::as_str).is_none()
    {
        {
            errors.insert(
                "priority".into(),
                json!("Specify the Priority (name) in the string format"),
            );
        }
    }
    let mut labels = Vec::new();
    if let Some(ls) = fields.get("labels") {
        for l in ls.as_array().into_iter().flatten() {
            match l.as_str() {
                Some(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                    labels.push(s.to_owned())
                }
                _ => {
                    errors.insert("labels".into(), json!("The label must not contain spaces."));
                }
            }
        }
    }
    if !errors.is_empty() {
        p.extend(errors.iter().map(|(k, v)| format!("field {k}: {v}")));
        return jira_error(StatusCode::BAD_REQUEST, &[], Value::Object(errors));
    }
    // Well-formed but not a priority this site has: Jira's answer, not a format violation.
    if let Some(name) = fields.pointer("/priority/name").and_then(Value::as_str)
        && !["Highest", "High", "Medium", "Low", "Lowest"].contains(&name)
    {
        return jira_error(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"priority": "Specify the Priority (name) of an existing priority"}),
        );
    }
    let mut issues = inner.issues.lock().unwrap();
    let n = issues.iter().filter(|i| i.project == project).count() + 1;
    let key = format!("{project}-{n}");
    let id = 10_000 + issues.len() + 1;
    issues.push(JiraIssue {
        key: key.clone(),
        project,
        summary,
        labels,
        done: false,
        comments: Vec::new(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")})),
    )
        .into_response()
}

/// The values of every `name = "value"` clause in a JQL string.
fn jql_values(jql: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let needle = format!("{name} = \"");
    let mut rest = jql;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((j, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = j + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push(value);
        rest = &rest[end..];
    }
    out
}

fn jira_search(inner: &Inner, v: &Value, p: &mut Vec<String>) -> Response {
    let Some(jql) = v
        .get("jql")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        p.push("search `jql` missing".into());
        return jira_error(
            StatusCode::BAD_REQUEST,
            &["JQL query is required"],
            json!({}),
        );
    };
    if v.get("fields")
        .is_some_and(|f| !f.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    {
        p.push("search `fields` is not an array of strings".into());
    }
    if v.get("maxResults").is_some_and(|m| !m.is_u64()) {
        p.push("search `maxResults` is not a number".into());
    }
    let projects = jql_values(jql, "project");
    let labels = jql_values(jql, "labels");
    let words: Vec<String> = jql_values(jql, "summary ~")
        .join(" ")
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let open_only = jql.contains("statusCategory != Done");
    let issues: Vec<Value> = inner
        .issues
        .lock()
        .unwrap()
        .iter()
        .filter(|i| projects.iter().all(|pr| *pr == i.project))
        .filter(|i| labels.iter().all(|l| i.labels.contains(l)))
        .filter(|i| !open_only || !i.done)
        .filter(|i| {
            let s = i.summary.to_lowercase();
            words.iter().all(|w| s.contains(w.as_str()))
        })
        .map(|i| json!({"id": "1", "key": i.key, "fields": {"summary": i.summary, "labels": i.labels, "status": {"name": if i.done {"Done"} else {"Open"}}}}))
        .collect();
    (
        StatusCode::OK,
        Json(json!({"issues": issues, "isLast": true})),
    )
        .into_response()
}

/// Atlassian Document Format: a `doc` (version 1) of block nodes of inline nodes.
pub fn check_adf(doc: &Value, p: &mut Vec<String>) {
    only_keys(doc, &["type", "version", "content"], "ADF doc", p);
    if doc.get("type").and_then(Value::as_str) != Some("doc") {
        p.push("ADF root `type` is not doc".into());
    }
    if doc.get("version").and_then(Value::as_u64) != Some(1) {
        p.push("ADF root `version` is not 1".into());
    }
    let Some(blocks) = doc.get("content").and_then(Value::as_array) else {
        p.push("ADF root `content` is not an array".into());
        return;
    };
    for b in blocks {
        only_keys(b, &["type", "content", "attrs"], "ADF block", p);
        if b.get("type").and_then(Value::as_str) != Some("paragraph") {
            p.push(format!("ADF block type {:?} unexpected", b.get("type")));
            continue;
        }
        let Some(inline) = b.get("content").and_then(Value::as_array) else {
            p.push("ADF paragraph `content` is not an array".into());
            continue;
        };
        for n in inline {
            match n.get("type").and_then(Value::as_str) {
                Some("text") => {
                    only_keys(n, &["type", "text", "marks"], "ADF text", p);
                    if n.get("text")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        p.push("ADF text node has an empty or missing `text`".into());
                    }
                }
                Some("hardBreak") => only_keys(n, &["type", "attrs"], "ADF hardBreak", p),
                other => p.push(format!("ADF inline type {other:?} unexpected")),
            }
        }
    }
}
