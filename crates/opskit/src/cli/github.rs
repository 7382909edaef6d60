//! `opskit github`: the GitHub REST API through [`opskit_apis::github`]: issues (pull requests
//! left out unless asked for), repositories, issue creation that is safe to retry, and any GET
//! endpoint with every page.
//!
//! The token is `--token` (env:VAR, file:PATH, cmd:COMMAND such as `cmd:gh auth token`, or
//! prompt), else `GH_TOKEN`, else `GITHUB_TOKEN` (gh's order), else the `--profile`'s auth, else
//! none (60 requests an hour). GET answers are kept in the HTTP cache with their `ETag`: a re-run
//! asks with `If-None-Match`, and GitHub's 304s do not count against the quota.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use futures::TryStreamExt as _;
use opskit_apis::github::{self as gh, GitHub, IssueFilter, NewIssue, Repo};
use opskit_apis::time_arg::{parse_time, unix_now};
use opskit_http as engine;
use serde_json::{Value, json};

use super::api_client::{self, ConnArgs};
use crate::exit::{Failure, code};
use crate::output::{Format, Sink};
use crate::secret_arg::{self, Literal};

#[derive(Debug, Args)]
pub struct GithubArgs {
    /// API base URL: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.
    #[arg(
        long,
        global = true,
        env = "GITHUB_API_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub api_url: Option<String>,
    /// Token: env:VAR, file:PATH, cmd:COMMAND (e.g. 'cmd:gh auth token') or prompt; default
    /// $GH_TOKEN, then $GITHUB_TOKEN.
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        help_heading = "Connection"
    )]
    pub token: Option<String>,
    /// Do not keep GET answers in the HTTP cache (and send no If-None-Match).
    #[arg(long, global = true, help_heading = "Connection")]
    pub no_cache: bool,
    /// Longest wait for a used-up quota to reset before the next page (default 1m); a later
    /// reset is an error that says when.
    #[arg(long, global = true, value_name = "DURATION", value_parser = super::parse_duration, help_heading = "Connection")]
    pub quota_wait: Option<Duration>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: GithubCommand,
}

#[derive(Debug, Subcommand)]
pub enum GithubCommand {
    /// Issues of a repository, every page (pull requests left out unless --include-prs).
    Issues {
        /// OWNER/REPO.
        repo: String,
        /// open (default), closed or all.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Only issues with this label (repeatable: all of them).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
        /// Only issues updated since: -7d / now-7d, a date (2026-01-31), RFC 3339 or Unix seconds.
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        since: Option<String>,
        /// Keep the pull requests GitHub lists among the issues.
        #[arg(long)]
        include_prs: bool,
    },
    /// Repositories of an organisation or a user, every page.
    Repos {
        /// Organisation or user name.
        owner: String,
    },
    /// Create an issue.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// GET any endpoint (e.g. repos/OWNER/REPO/pulls), following every Link page.
    Api {
        /// Path under the API URL.
        path: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Create an issue; safe to retry: a lost answer is looked up before sending again, and
    /// with --idempotency-key a re-run finds the issue instead of creating a twin.
    Create {
        /// OWNER/REPO.
        repo: String,
        #[arg(long)]
        title: String,
        /// The body text (Markdown).
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        /// Read the body from a file (- for stdin).
        #[arg(long, value_name = "PATH")]
        body_file: Option<PathBuf>,
        /// A label (repeatable).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
        /// A key of yours (e.g. an alert id): the same key never creates a second issue.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum State {
    Open,
    Closed,
    All,
}

impl GithubArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let ep = api_client::endpoint(
            "github",
            "--api-url / GITHUB_API_URL",
            self.api_url.as_deref(),
            Some(gh::DEFAULT_API_URL),
            &self.conn,
        )?;
        let mut cfg = ep.config;
        cfg.observer = Some(std::sync::Arc::new(api_client::WaitNotice));
        cfg.rate_limit.max_pause = self.quota_wait.unwrap_or(Duration::from_secs(60));
        if !self.no_cache {
            let dir = dirs::cache_dir()
                .map(|d| d.join("opskit").join("http"))
                .ok_or_else(|| {
                    Failure::usage("cannot find a cache directory")
                        .with_hint("set XDG_CACHE_HOME, or give --no-cache")
                })?;
            // always asked again (TTL 0), with the stored ETag: a 304 costs no quota
            let mut cache = engine::CacheConfig::new(Duration::ZERO).dir(dir);
            cache.keep_stale = Duration::from_secs(30 * 24 * 3600);
            cfg.cache = Some(cache);
        }
        let output = self.conn.output;
        let retries = self.conn.retries;
        let base = ep.base_url;
        let profile_auth = ep.profile_auth;
        crate::block_on(async move {
            let token = match &self.token {
                Some(spec) => Some(
                    secret_arg::resolve(spec, "--token", "GitHub token: ", Literal::Refused)
                        .await?,
                ),
                None => ["GH_TOKEN", "GITHUB_TOKEN"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok().filter(|t| !t.trim().is_empty()))
                    .map(|t| t.trim().to_owned().into()),
            };
            match token {
                Some(t) => cfg.auth = engine::Auth::Bearer(engine::Secret::Value(t)),
                None if profile_auth => {}
                None => tracing::debug!("no GitHub token: anonymous requests (60 an hour)"),
            }
            let client = GitHub::new(&base, cfg).map_err(crate::failure::apis)?;
            run_command(&client, self.command, output, retries).await
        })?
    }
}

async fn run_command(
    client: &GitHub,
    command: GithubCommand,
    output: Option<Format>,
    retries: Option<u32>,
) -> anyhow::Result<u8> {
    match command {
        GithubCommand::Issues {
            repo,
            state,
            labels,
            since,
            include_prs,
        } => {
            let repo: Repo = repo.parse().map_err(crate::failure::apis)?;
            let filter = IssueFilter {
                state: state.map(|s| {
                    match s {
                        State::Open => "open",
                        State::Closed => "closed",
                        State::All => "all",
                    }
                    .to_owned()
                }),
                labels,
                since: since.as_deref().map(since_param).transpose()?,
                include_prs,
            };
            let mut columns = vec![
                "number",
                "title",
                "state",
                "user",
                "labels",
                "assignees",
                "comments",
                "created_at",
                "updated_at",
                "closed_at",
                "url",
            ];
            if include_prs {
                columns.push("pull_request");
            }
            let pages = client.issues(&repo, &filter);
            api_client::stream_rows(&columns, pages, output, |i| issue_row(i, include_prs)).await?;
            Ok(code::OK)
        }
        GithubCommand::Repos { owner } => {
            let pages = client.repos(&owner).await.map_err(crate::failure::apis)?;
            let columns = [
                "full_name",
                "private",
                "fork",
                "archived",
                "language",
                "stars",
                "default_branch",
                "pushed_at",
                "url",
            ];
            api_client::stream_rows(&columns, pages, output, repo_row).await?;
            Ok(code::OK)
        }
        GithubCommand::Api { path } => {
            if path.contains("://") {
                return Err(Failure::usage(format!(
                    "`{path}`: give a path under the API URL (e.g. repos/OWNER/REPO/pulls)"
                ))
                .with_hint("another server is --api-url URL")
                .into());
            }
            let format = Format::or_default(output);
            let mut sink = Sink::new(
                format,
                crate::output::color_stdout(),
                true,
                std::io::IsTerminal::is_terminal(&std::io::stdout()),
                crate::output::stdout(),
            );
            let mut pages = std::pin::pin!(client.get_all(&path));
            while let Some(page) = pages.try_next().await.map_err(crate::failure::apis)? {
                sink.push(page)?;
            }
            sink.finish()?;
            Ok(code::OK)
        }
        GithubCommand::Issue(IssueCommand::Create {
            repo,
            title,
            body,
            body_file,
            labels,
            idempotency_key,
        }) => {
            let repo: Repo = repo.parse().map_err(crate::failure::apis)?;
            let body = match (body, body_file) {
                (Some(b), _) => b,
                (None, Some(p)) => read_body(&p)?,
                (None, None) => String::new(),
            };
            let issue = NewIssue {
                title,
                body,
                labels,
                idempotency_key,
            };
            let created = client
                .create_issue(&repo, &issue, retries.unwrap_or(3) + 1)
                .await
                .map_err(crate::failure::apis)?;
            if created.existed {
                eprintln!(
                    "note: issue #{} already has this idempotency key; nothing was created",
                    created.issue["number"]
                );
            }
            let row = issue_row(&created.issue, false);
            api_client::print_rows(&["number", "title", "state", "url"], vec![row], output)?;
            Ok(code::OK)
        }
    }
}

fn issue_row(i: &Value, with_pr: bool) -> Value {
    let names = |key: &str, field: &str| {
        i.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get(field).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let mut row = json!({
        "number": i.get("number"),
        "title": i.get("title"),
        "state": i.get("state"),
        "user": i.pointer("/user/login"),
        "labels": names("labels", "name"),
        "assignees": names("assignees", "login"),
        "comments": i.get("comments"),
        "created_at": i.get("created_at"),
        "updated_at": i.get("updated_at"),
        "closed_at": i.get("closed_at"),
        "url": i.get("html_url"),
    });
    if with_pr {
        row["pull_request"] = json!(gh::is_pull_request(i));
    }
    row
}

fn repo_row(r: &Value) -> Value {
    json!({
        "full_name": r.get("full_name"),
        "private": r.get("private"),
        "fork": r.get("fork"),
        "archived": r.get("archived"),
        "language": r.get("language"),
        "stars": r.get("stargazers_count"),
        "default_branch": r.get("default_branch"),
        "pushed_at": r.get("pushed_at"),
        "url": r.get("html_url"),
    })
}

/// `--since` as GitHub takes it: `YYYY-MM-DDTHH:MM:SSZ`. A bare date is its midnight (UTC).
fn since_param(text: &str) -> anyhow::Result<String> {
    let t = text.trim();
    let with_time = if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') {
        format!("{t}T00:00:00Z")
    } else {
        t.to_owned()
    };
    let unix =
        parse_time(&with_time, unix_now()).map_err(|e| Failure::usage(format!("--since: {e}")))?;
    Ok(opskit_apis::time_arg::rfc3339(unix.floor()))
}

fn read_body(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| Failure::usage(format!("--body-file {}: {e}", path.display())))?;
    Ok(text)
}
