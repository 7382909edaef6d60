//! What the typed API families (`opskit prom`, `opskit github`, …) share: the connection flags,
//! the base URL and credential from a flag, the ecosystem's env var or an opskit profile
//! (`[profiles.NAME]` of the http config file, [`super::http::profile`]), the engine's client
//! configuration built from them, and rows on stdout through the one [`crate::output`] Sink.

use std::path::PathBuf;

use clap::Args;
use opskit_http as engine;
use serde_json::Value;

use super::http::exchange::{deadlines_and_retries, profile_auth};
use super::http::profile::{self, Profile};
use super::http::values::{SecretRef, Span};
use crate::exit::Failure;
use crate::output::Format;

/// Flags every API family takes (after the family name or after its subcommand).
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Profile from the opskit config file: its base_url, auth, headers, timeout, retries and
    /// ca_bundle (the family's URL flag and env var win over its base_url).
    #[arg(long, global = true, value_name = "NAME", help_heading = "Connection")]
    pub profile: Option<String>,
    /// Deadline for each request (e.g. 30s).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        help_heading = "Connection"
    )]
    pub timeout: Option<Span>,
    /// Deadline for opening the connection.
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        help_heading = "Connection"
    )]
    pub connect_timeout: Option<Span>,
    /// Retries (default 3) on connection errors, 429 and 5xx; honours Retry-After.
    #[arg(long, global = true, value_name = "N", help_heading = "Connection")]
    pub retries: Option<u32>,
    /// Extra CA certificates (PEM) to trust.
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub ca_bundle: Option<PathBuf>,
    /// Output format: table (default on a terminal), json (default otherwise), ndjson, csv.
    #[arg(long, global = true, value_enum, help_heading = "Output")]
    pub output: Option<Format>,
}

/// Where to send requests and how: the base URL and the engine configuration.
pub struct Endpoint {
    pub base_url: String,
    pub config: engine::ClientConfig,
    /// The profile gave an `[auth]` (a credential flag or env var replaces it).
    pub profile_auth: bool,
}

/// The base URL (`url`: the family's flag or env var, else the profile's `base_url`, else
/// `default`) and the client configuration (flags over the profile over the defaults).
/// `what` names the family in messages (`prom`), `url_flag` its URL flag and env var.
pub fn endpoint(
    what: &str,
    url_flag: &str,
    url: Option<&str>,
    default: Option<&str>,
    conn: &ConnArgs,
) -> anyhow::Result<Endpoint> {
    let profile = match &conn.profile {
        Some(name) => Some(profile::select(Some(name)).map_err(|e| {
            let f = Failure::usage(e.message);
            match e.hint {
                Some(h) => f.with_hint(h),
                None => f,
            }
        })?),
        None => None,
    }
    .flatten();
    let p: Profile = profile.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let base_url = match (url.filter(|u| !u.is_empty()), &p.base_url, default) {
        (Some(u), _, _) => u.to_owned(),
        (None, Some(b), _) => b.to_string(),
        (None, None, Some(d)) => d.to_owned(),
        (None, None, None) => {
            return Err(Failure::usage(format!("opskit {what}: no server URL"))
                .with_hint(format!(
                    "give {url_flag}, or --profile NAME with a base_url in the opskit config file"
                ))
                .into());
        }
    };
    check_url(&base_url, url_flag)?;
    let mut cfg = deadlines_and_retries(
        conn.timeout.or(p.timeout).map(|s| s.0),
        conn.connect_timeout.or(p.connect_timeout).map(|s| s.0),
        conn.retries.or(p.retries),
    );
    if let Some(ca) = conn.ca_bundle.clone().or(p.ca_bundle.clone()) {
        cfg.tls.ca_bundle = Some(ca);
    }
    let profile_auth_given = p.auth.is_some();
    if let Some(a) = &p.auth {
        cfg.auth = profile_auth(a);
    }
    cfg.default_headers = p
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    cfg.secret_headers = p.secret_headers.clone();
    cfg.secret_query = p.secret_query.clone();
    Ok(Endpoint {
        base_url,
        config: cfg,
        profile_auth: profile_auth_given,
    })
}

fn check_url(url: &str, flag: &str) -> anyhow::Result<()> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(
            Failure::usage(format!("{flag}: `{url}` is not an http:// or https:// URL"))
                .with_hint("write it like http://prometheus:9090 or https://api.github.com")
                .into(),
        ),
    }
}

/// A credential flag or env var: a bearer token from `env:VAR`, `file:PATH`, `cmd:COMMAND` or
/// the value itself (as `--bearer` of `opskit http`).
pub fn bearer(token: &SecretRef) -> engine::Auth {
    engine::Auth::Bearer(token.to_secret())
}

/// Writes rows in the chosen format (a table on a terminal, JSON otherwise) through the one
/// Sink: `columns` in that order for the table and CSV, every field for JSON and NDJSON.
pub fn print_rows<S: AsRef<str>>(
    columns: &[S],
    rows: Vec<Value>,
    output: Option<Format>,
) -> anyhow::Result<()> {
    let cols: Vec<&str> = columns.iter().map(AsRef::as_ref).collect();
    let mut out = crate::output::stdout();
    crate::output::render_rows(&mut out, &cols, &rows, Format::or_default(output))?;
    Ok(())
}

/// `--fail-empty`: exit 1 with this message when a command found nothing.
pub fn empty_result(what: &str) -> anyhow::Error {
    Failure::new(
        crate::exit::code::FAILURE,
        format!("{what}: the result is empty"),
    )
    .with_hint("--fail-empty makes an empty result exit 1; leave it out to exit 0")
    .into()
}

/// Says on stderr when the engine waits a second or more (a used-up server quota, a retry
/// after a 429 or 503): a command that sits silent looks hung.
pub struct WaitNotice;

impl engine::Observer for WaitNotice {
    fn on_wait(&self, ev: &engine::WaitEvent) {
        if ev.wait < std::time::Duration::from_secs(1) {
            return;
        }
        let why = match &ev.reason {
            engine::WaitReason::Retry { retry, cause, .. } => {
                format!("retry {retry} after {cause}")
            }
            engine::WaitReason::RateLimit => "client rate limit".into(),
            engine::WaitReason::ServerQuota => {
                "the server's quota is used up until its reset".into()
            }
        };
        eprintln!(
            "… waiting {:.0}s for {} ({why})",
            ev.wait.as_secs_f64(),
            ev.host
        );
    }
}

/// Writes the rows of every page as they arrive (the table waits for the last page), `columns`
/// in that order for the table and CSV.
pub async fn stream_rows<S>(
    columns: &[&str],
    pages: S,
    output: Option<Format>,
    row: impl Fn(&Value) -> Value,
) -> anyhow::Result<()>
where
    S: futures::Stream<Item = Result<Vec<Value>, opskit_apis::Error>>,
{
    use futures::TryStreamExt as _;
    let format = Format::or_default(output);
    let mut sink = crate::output::Sink::new(
        format,
        crate::output::color_stdout(),
        true,
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
        crate::output::stdout(),
    )
    .with_columns(columns);
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.try_next().await.map_err(crate::failure::apis)? {
        sink.push(page.iter().map(&row).collect())?;
    }
    sink.finish()?;
    Ok(())
}
