//! `opskit jira issue create|get|search|comment|transition`: Jira through
//! [`opskit_apis::jira`], on the wire format `opskit notify jira` uses (one implementation, in
//! `opskit_notify::jira`).
//!
//! The site is `--url`, else `JIRA_URL`, else the base_url of `--profile NAME`. Jira Cloud (REST
//! API v3, rich text as ADF) takes Basic `--email`/`JIRA_EMAIL` with the API token `--token`
//! (default `JIRA_API_TOKEN`), as `opskit notify jira` does; Data Center takes a personal access
//! token as Bearer (`--auth-type bearer` or `JIRA_AUTH_TYPE=bearer`, REST API v2, plain-text rich
//! text). `--api-version` overrides the API (e.g. 2 for Data Center with a username and password).

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use opskit_apis::jira::{self as api, Credential, Deployment, IssueRequest, Jira};
use opskit_http as engine;
use serde_json::{Value, json};

use super::api_client::{self, ConnArgs};
use crate::exit::{Failure, code};
use crate::output::Format;
use crate::secret_arg::{self, Literal};

const SEARCH_COLUMNS: [&str; 9] = [
    "key", "type", "status", "priority", "assignee", "summary", "labels", "created", "updated",
];

#[derive(Debug, Args)]
pub struct JiraArgs {
    /// The Jira site, e.g. https://example.atlassian.net (Data Center: its base URL).
    #[arg(
        long,
        global = true,
        env = "JIRA_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub url: Option<String>,
    /// The account email (Basic auth is email:api_token); with --api-version 2, a username.
    #[arg(
        long,
        global = true,
        env = "JIRA_EMAIL",
        value_name = "EMAIL",
        help_heading = "Connection"
    )]
    pub email: Option<String>,
    /// The API token (or Data Center personal access token): env:VAR, file:PATH, cmd:COMMAND or
    /// prompt; default $JIRA_API_TOKEN, else the --profile's auth.
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        help_heading = "Connection"
    )]
    pub token: Option<String>,
    /// basic (Cloud: email + API token) or bearer (Data Center personal access token).
    #[arg(
        long,
        global = true,
        env = "JIRA_AUTH_TYPE",
        value_enum,
        default_value_t = AuthType::Basic,
        help_heading = "Connection"
    )]
    pub auth_type: AuthType,
    /// 3 (Cloud, ADF) or 2 (Data Center / Server, plain text); default 3 with basic, 2 with
    /// bearer.
    #[arg(
        long,
        global = true,
        env = "JIRA_API_VERSION",
        value_parser = ["2", "3"],
        help_heading = "Connection"
    )]
    pub api_version: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: JiraCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthType {
    Basic,
    Bearer,
}

#[derive(Debug, Subcommand)]
pub enum JiraCommand {
    /// Issues: create, get, search, comment, transition.
    #[command(subcommand)]
    Issue(IssueCommand),
}

#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Create an issue; prints its key, id and URL. Safe to retry: after a lost answer the
    /// project's newest issues are searched for it before sending again.
    Create {
        /// Project key (e.g. OPS).
        #[arg(long)]
        project: String,
        /// Issue type name (e.g. Task, Bug, Incident).
        #[arg(long = "type", value_name = "TYPE")]
        issue_type: String,
        /// One-line summary.
        #[arg(long)]
        summary: String,
        /// Description (plain text; blank lines make paragraphs).
        #[arg(long, conflicts_with = "description_file")]
        description: Option<String>,
        /// Read the description from a file (- for stdin).
        #[arg(long, value_name = "PATH")]
        description_file: Option<PathBuf>,
        /// Priority name (e.g. High).
        #[arg(long)]
        priority: Option<String>,
        /// A label (repeatable; no spaces).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
    },
    /// One issue: key, type, status, people, summary, labels, dates, URL and description.
    Get {
        /// Issue key (e.g. OPS-12) or id.
        key: String,
    },
    /// Issues matching a JQL query, every page.
    Search {
        /// JQL, e.g. 'project = OPS AND statusCategory != Done ORDER BY created DESC'.
        jql: String,
        /// At most this many issues.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Add a comment (plain text; blank lines make paragraphs).
    Comment {
        /// Issue key.
        key: String,
        /// The comment text.
        #[arg(
            long,
            conflicts_with = "body_file",
            required_unless_present = "body_file"
        )]
        body: Option<String>,
        /// Read the comment from a file (- for stdin).
        #[arg(long, value_name = "PATH")]
        body_file: Option<PathBuf>,
    },
    /// Move an issue through its workflow by transition name (or target status name).
    Transition {
        /// Issue key.
        key: String,
        /// The transition's name (e.g. "Done", "Start Progress"), or the status it leads to.
        #[arg(long, value_name = "NAME")]
        to: String,
    },
}

impl JiraArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let ep = api_client::endpoint(
            "jira",
            "--url / JIRA_URL",
            self.url.as_deref(),
            None,
            &self.conn,
        )?;
        let deployment = match (self.api_version.as_deref(), self.auth_type) {
            (Some("2"), _) | (None, AuthType::Bearer) => Deployment::DataCenter,
            _ => Deployment::Cloud,
        };
        let mut cfg = ep.config;
        cfg.observer = Some(std::sync::Arc::new(api_client::WaitNotice));
        let output = self.conn.output;
        let retries = self.conn.retries;
        let base = ep.base_url;
        let profile_auth = ep.profile_auth;
        crate::block_on(async move {
            let token = match &self.token {
                Some(spec) => Some(
                    secret_arg::resolve(spec, "--token", "Jira API token: ", Literal::Refused)
                        .await?,
                ),
                None => std::env::var("JIRA_API_TOKEN")
                    .ok()
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| t.trim().to_owned().into()),
            };
            let credential = match (token, self.auth_type) {
                (Some(t), AuthType::Bearer) => Some(Credential::Bearer(engine::Secret::Value(t))),
                (Some(t), AuthType::Basic) => {
                    let email = self.email.as_deref().unwrap_or("");
                    Some(
                        Credential::basic(email, engine::Secret::Value(t)).map_err(|e| {
                            Failure::usage(e.to_string()).with_hint(
                                "set JIRA_EMAIL or --email (Cloud's Basic auth is email:api_token), \
                                 or --auth-type bearer for a Data Center personal access token",
                            )
                        })?,
                    )
                }
                (None, _) if profile_auth => None,
                (None, _) => {
                    return Err(Failure::usage("opskit jira: no Jira API token")
                        .with_hint(
                            "set JIRA_API_TOKEN, give --token env:VAR|file:PATH|cmd:COMMAND, \
                             or --profile NAME with an [auth]",
                        )
                        .into());
                }
            };
            let client =
                Jira::new(&base, credential, deployment, cfg).map_err(crate::failure::apis)?;
            run_command(&client, self.command, output, retries).await
        })?
    }
}

async fn run_command(
    client: &Jira,
    command: JiraCommand,
    output: Option<Format>,
    retries: Option<u32>,
) -> anyhow::Result<u8> {
    let JiraCommand::Issue(command) = command;
    match command {
        IssueCommand::Create {
            project,
            issue_type,
            summary,
            description,
            description_file,
            priority,
            labels,
        } => {
            let mut req = IssueRequest::new(project, summary);
            req.issue_type = issue_type;
            req.description = match (description, description_file) {
                (Some(d), _) => Some(d),
                (None, Some(p)) => Some(read_text(&p, "--description-file")?),
                (None, None) => None,
            };
            req.priority = priority;
            req.labels = labels;
            let created = client
                .create_issue(&req, retries.unwrap_or(3) + 1)
                .await
                .map_err(crate::failure::apis)?;
            if created.recovered {
                eprintln!(
                    "note: the answer to the create was lost; {} was found by a search, not created twice",
                    created.issue.key
                );
            }
            let row = json!({
                "key": created.issue.key,
                "id": created.issue.id,
                "url": client.browse_url(&created.issue.key),
            });
            api_client::print_rows(&["key", "id", "url"], vec![row], output)?;
            Ok(code::OK)
        }
        IssueCommand::Get { key } => {
            let mut fields = api::DEFAULT_FIELDS.to_vec();
            fields.push("description");
            let issue = client
                .issue(&key, &fields)
                .await
                .map_err(crate::failure::apis)?;
            let mut row = issue_row(&issue);
            let key = issue.get("key").and_then(Value::as_str).unwrap_or(&key);
            row["reporter"] = person(&issue, "reporter");
            row["url"] = json!(client.browse_url(key));
            row["description"] = issue
                .pointer("/fields/description")
                .filter(|d| !d.is_null())
                .map(|d| json!(opskit_notify::adf::to_plain_text(d)))
                .unwrap_or(Value::Null);
            let mut columns = SEARCH_COLUMNS.to_vec();
            columns.extend(["reporter", "url", "description"]);
            api_client::print_rows(&columns, vec![row], output)?;
            Ok(code::OK)
        }
        IssueCommand::Search { jql, limit } => {
            if jql.trim().is_empty() {
                return Err(Failure::usage("the JQL is empty")
                    .with_hint("Jira refuses unbounded searches: give e.g. 'project = OPS'")
                    .into());
            }
            let pages = client.search(&jql, api::DEFAULT_FIELDS, limit);
            api_client::stream_rows(&SEARCH_COLUMNS, pages, output, issue_row).await?;
            Ok(code::OK)
        }
        IssueCommand::Comment {
            key,
            body,
            body_file,
        } => {
            let text = match (body, body_file) {
                (Some(b), _) => b,
                (None, Some(p)) => read_text(&p, "--body-file")?,
                (None, None) => return Err(Failure::usage("give --body or --body-file").into()),
            };
            let comment = client
                .comment(&key, &text)
                .await
                .map_err(crate::failure::apis)?;
            let id = comment.get("id").and_then(Value::as_str).unwrap_or("");
            let row = json!({
                "key": key,
                "id": id,
                "author": comment.pointer("/author/displayName").or_else(|| comment.pointer("/author/name")),
                "created": comment.get("created"),
                "url": format!("{}?focusedCommentId={id}", client.browse_url(&key)),
            });
            api_client::print_rows(
                &["key", "id", "author", "created", "url"],
                vec![row],
                output,
            )?;
            Ok(code::OK)
        }
        IssueCommand::Transition { key, to } => {
            let done = client
                .transition(&key, &to)
                .await
                .map_err(crate::failure::apis)?;
            let row = json!({
                "key": key,
                "transition": done.name,
                "id": done.id,
                "status": done.to.as_ref().map(|s| s.name.clone()),
            });
            api_client::print_rows(&["key", "transition", "id", "status"], vec![row], output)?;
            Ok(code::OK)
        }
    }
}

/// A search hit or an issue as a row (labels comma-joined, people by display name).
fn issue_row(i: &Value) -> Value {
    let f = |p: &str| {
        i.pointer(&format!("/fields/{p}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    json!({
        "key": i.get("key"),
        "type": f("issuetype/name"),
        "status": f("status/name"),
        "priority": f("priority/name"),
        "assignee": person(i, "assignee"),
        "summary": f("summary"),
        "labels": i.pointer("/fields/labels").and_then(Value::as_array).map(|a| {
            a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
        }),
        "created": f("created"),
        "updated": f("updated"),
    })
}

/// A user field by its display name (Cloud) or name (Data Center).
fn person(i: &Value, field: &str) -> Value {
    let p = |k: &str| i.pointer(&format!("/fields/{field}/{k}")).cloned();
    p("displayName")
        .or_else(|| p("name"))
        .unwrap_or(Value::Null)
}

fn read_text(path: &std::path::Path, flag: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| Failure::usage(format!("{flag} {}: {e}", path.display())))?;
    Ok(text)
}
