//! Jira Cloud REST API v3: the bodies for creating an issue, searching for an open duplicate and
//! commenting on it.
//!
//! References (developer.atlassian.com, Jira Cloud platform REST API v3):
//! - `POST /rest/api/3/issue` — `{"fields":{"project":{"key"},"summary","issuetype":{"name"},
//!   "description":ADF,"priority":{"name"},"labels":[…]}}` → `201 {"id","key","self"}`.
//! - `POST /rest/api/3/search/jql` — `{"jql","fields":[…],"maxResults"}` →
//!   `{"issues":[{"id","key","fields":{…}}],"isLast"}` (the replacement of `/rest/api/3/search`,
//!   which is used when the site answers 404 to the new one).
//! - `POST /rest/api/3/issue/{key}/comment` — `{"body":ADF}` → `201 {"id",…}`.
//! - Basic auth with `email:api_token`.
//!
//! This module is the one place for Jira's wire format: `opskit notify jira` ([`crate::JiraClient`])
//! and the typed client `opskit_apis::jira` (`opskit jira issue …`) both build their requests
//! with it: the create body ([`IssueRequest`]), rich text as ADF or, for Data Center, a plain
//! string ([`Deployment`], [`crate::adf`]), the credential ([`Credential`]), issue keys
//! ([`check_issue_key`]), JQL strings ([`jql_string`]) and Jira's error body ([`error_summary`]).

use opskit_http::{Auth, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Error;
use crate::adf;

/// Path of the create-issue endpoint.
pub const CREATE_PATH: &str = "/rest/api/3/issue";
/// Path of the JQL search endpoint.
pub const SEARCH_PATH: &str = "/rest/api/3/search/jql";
/// The search endpoint sites without the enhanced JQL search still have (same request body).
pub const LEGACY_SEARCH_PATH: &str = "/rest/api/3/search";

/// What to open (or, with dedupe, what to look for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    pub project: String,
    pub summary: String,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub labels: Vec<String>,
    pub issue_type: String,
}

impl IssueRequest {
    pub fn new(project: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            summary: summary.into(),
            description: None,
            priority: None,
            labels: Vec::new(),
            issue_type: "Incident".to_owned(),
        }
    }

    /// Checks the rules Jira enforces, so the user hears about them before a round trip.
    pub fn validate(&self) -> Result<(), Error> {
        let project = self.project.trim();
        if project.is_empty()
            || !project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::InvalidInput(format!(
                "project key {:?} must be letters, digits or _ (e.g. OPS)",
                self.project
            )));
        }
        if self.summary.trim().is_empty() {
            return Err(Error::InvalidInput("the summary is empty".into()));
        }
        if self.summary.chars().count() > 255 {
            return Err(Error::InvalidInput(
                "the summary is longer than Jira's 255 characters".into(),
            ));
        }
        if self.summary.contains('\n') {
            return Err(Error::InvalidInput(
                "the summary must be one line; put details in --description".into(),
            ));
        }
        for label in &self.labels {
            if label.is_empty() || label.chars().any(char::is_whitespace) {
                return Err(Error::InvalidInput(format!(
                    "label {label:?} is empty or contains spaces, which Jira does not allow"
                )));
            }
        }
        if self.issue_type.trim().is_empty() {
            return Err(Error::InvalidInput("the issue type is empty".into()));
        }
        Ok(())
    }

    /// The body of `POST /rest/api/3/issue`.
    pub fn create_body(&self) -> Value {
        self.create_body_for(Deployment::Cloud)
    }

    /// The body of `POST /rest/api/{3|2}/issue`: the description as ADF for Cloud, as a plain
    /// string for Data Center.
    pub fn create_body_for(&self, deployment: Deployment) -> Value {
        let mut fields = serde_json::Map::new();
        fields.insert("project".into(), json!({ "key": self.project.trim() }));
        fields.insert("summary".into(), json!(self.summary));
        fields.insert("issuetype".into(), json!({ "name": self.issue_type }));
        if let Some(description) = &self.description {
            fields.insert("description".into(), deployment.rich_text(description));
        }
        if let Some(priority) = &self.priority {
            fields.insert("priority".into(), json!({ "name": priority }));
        }
        if !self.labels.is_empty() {
            fields.insert("labels".into(), json!(self.labels));
        }
        json!({ "fields": fields })
    }

    /// JQL for open issues of the project carrying every label whose summary contains the words
    /// of ours. Jira's `~` is a fuzzy text match, so [`find_duplicate`] then compares summaries
    /// exactly.
    pub fn dedupe_jql(&self) -> String {
        let mut jql = format!("project = {}", jql_string(self.project.trim()));
        let words = text_search_terms(&self.summary);
        if !words.is_empty() {
            jql.push_str(&format!(" AND summary ~ {}", jql_string(&words)));
        }
        for label in &self.labels {
            jql.push_str(&format!(" AND labels = {}", jql_string(label)));
        }
        jql.push_str(" AND statusCategory != Done ORDER BY created DESC");
        jql
    }

    /// The body of `POST /rest/api/3/search/jql`.
    pub fn search_body(&self) -> Value {
        json!({
            "jql": self.dedupe_jql(),
            "fields": ["summary", "labels", "status"],
            "maxResults": 50,
        })
    }

    /// The body of the comment added to a duplicate instead of opening a new issue.
    pub fn comment_body(&self, when_rfc3339: &str) -> Value {
        let mut text = format!("Seen again at {when_rfc3339}.");
        if let Some(description) = &self.description {
            text.push_str("\n\n");
            text.push_str(description);
        }
        json!({ "body": adf::from_plain_text(&text) })
    }
}

/// Which Jira: Cloud (REST API v3, rich text as ADF) or Data Center / Server (REST API v2, rich
/// text as plain strings; sending ADF there fails with "Operation value must be a string").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deployment {
    #[default]
    Cloud,
    DataCenter,
}

impl Deployment {
    /// `rest/api/3` or `rest/api/2` (no leading slash).
    pub fn api_prefix(self) -> &'static str {
        match self {
            Deployment::Cloud => "rest/api/3",
            Deployment::DataCenter => "rest/api/2",
        }
    }

    /// A rich-text field (description, comment body) from plain text.
    pub fn rich_text(self, text: &str) -> Value {
        match self {
            Deployment::Cloud => adf::from_plain_text(text),
            Deployment::DataCenter => json!(text),
        }
    }
}

/// How to authenticate to Jira: Cloud takes Basic `email:api_token`; Data Center takes a
/// personal access token as `Bearer` (Jira 8.14+), or Basic with a username and password.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `Authorization: Basic base64(user:secret)`.
    Basic { user: String, secret: Secret },
    /// `Authorization: Bearer <personal access token>`.
    Bearer(Secret),
}

impl Credential {
    /// Basic auth with an account email (or a Data Center username) and an API token (or
    /// password); the user must not be empty.
    pub fn basic(user: &str, secret: Secret) -> Result<Self, Error> {
        if user.trim().is_empty() {
            return Err(Error::InvalidInput(
                "the Jira account email is empty (Basic auth is email:api_token)".into(),
            ));
        }
        Ok(Credential::Basic {
            user: user.trim().to_owned(),
            secret,
        })
    }

    /// The engine's auth provider for this credential.
    pub fn auth(&self) -> Auth {
        match self {
            Credential::Basic { user, secret } => Auth::Basic {
                username: user.clone(),
                password: secret.clone(),
            },
            Credential::Bearer(token) => Auth::Bearer(token.clone()),
        }
    }
}

/// A JQL string literal: double-quoted, with `\` and `"` escaped.
pub fn jql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The summary's words without the characters Jira's text search reserves.
fn text_search_terms(summary: &str) -> String {
    summary
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `POST /rest/api/3/issue` answers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CreatedIssue {
    pub id: String,
    pub key: String,
    #[serde(rename = "self", default)]
    pub self_url: String,
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    #[serde(default)]
    issues: Vec<SearchIssue>,
}

#[derive(Debug, Deserialize)]
struct SearchIssue {
    key: String,
    #[serde(default)]
    fields: SearchFields,
}

#[derive(Debug, Default, Deserialize)]
struct SearchFields {
    #[serde(default)]
    summary: String,
}

/// The key of the first issue in a search response whose summary equals `summary` exactly
/// (ignoring surrounding spaces).
pub fn find_duplicate(search_response: &[u8], summary: &str) -> Result<Option<String>, Error> {
    let parsed: SearchResponse =
        serde_json::from_slice(search_response).map_err(|e| Error::UnexpectedResponse {
            destination: "jira".into(),
            detail: format!("search answer is not the documented JSON: {e}"),
        })?;
    Ok(parsed
        .issues
        .into_iter()
        .find(|i| i.fields.summary.trim() == summary.trim())
        .map(|i| i.key))
}

/// `https://site/browse/KEY`.
pub fn browse_url(base_url: &str, key: &str) -> String {
    format!("{}/browse/{key}", base_url.trim_end_matches('/'))
}

/// Jira's error body (`{"errorMessages":[…],"errors":{field: message}}`) as one line, when the
/// body has that shape.
pub fn error_summary(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let mut parts: Vec<String> = v
        .get("errorMessages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(errors) = v.get("errors").and_then(Value::as_object) {
        for (field, msg) in errors {
            parts.push(format!("{field}: {}", msg.as_str().unwrap_or("invalid")));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// An issue key (`OPS-12`) or id (`10042`): letters, digits, `-` and `_` only, so it is safe in
/// a URL path.
pub fn check_issue_key(key: &str) -> Result<(), Error> {
    if key.is_empty()
        || key.len() > 255
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::InvalidInput(format!(
            "{key:?} is not an issue key (like OPS-12) or id"
        )));
    }
    Ok(())
}
