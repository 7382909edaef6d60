//! `monitor.toml`: monitors, destinations (defined once, referenced by name), maintenance
//! windows, guards and settings. Every error names the file, the line and the key.
//!
//! ```toml
//! [settings]
//! listen = "127.0.0.1:9464"       # heartbeat receiver of `opskit monitor run`
//! guard = ["127.0.0.1:53"]         # while none of these answers, results are "unknown"
//!
//! [defaults]
//! interval = "60s"
//! timeout = "10s"
//!
//! [destinations.ops-slack]
//! type = "slack"
//! webhook = "env:SLACK_WEBHOOK_URL"
//!
//! [[monitor]]
//! name = "api"
//! kind = "http"
//! target = "https://api.example.com/health"
//! conditions = [".status == 200", ".response_time_ms < 300", '.body.status == "UP"']
//! alerts = ["ops-slack"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opskit_http::Secret;
use serde::Deserialize;
use toml::Spanned;

use crate::condition::Condition;
use crate::inventory::{
    InventoryServer, PLACEHOLDERS, Selector, SelectorError, placeholders, sample_server, substitute,
};
use crate::maintenance::Maintenance;
use crate::{Error, Result};

/// Defaults of the alert state machine.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 2;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub monitors: Vec<Monitor>,
    pub destinations: BTreeMap<String, Destination>,
    pub maintenance: Vec<Maintenance>,
    /// `[[template]]`s: monitors made per inventory server (by `opskit serve`, see
    /// [`crate::inventory`]).
    pub templates: Vec<Template>,
    /// The file's `[defaults]` table as TOML text (empty without one), so that a monitor
    /// defined elsewhere (through the API, [`crate::definitions::check`]) gets the defaults
    /// the file's monitors get.
    pub defaults_toml: String,
}

/// `[settings]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Database URL (`sqlite://…` or `postgres://…`); the command line's `--database` wins.
    pub database: Option<String>,
    /// Where `opskit monitor run` listens for `POST /heartbeat/<token>`.
    pub listen: Option<String>,
    /// Checks running at once.
    pub concurrency: usize,
    /// Self-connectivity guard: `host:port` (TCP) or `http(s)://` URLs.
    pub guard: Vec<String>,
    /// Raw results kept per monitor.
    pub keep_results: u32,
    /// Hourly and daily buckets, incidents and delivered alerts older than this are deleted.
    pub retention: Duration,
}

/// One monitor.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub name: String,
    pub group: Option<String>,
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    /// All must hold; when none are given, the kind's default applies.
    pub conditions: Vec<Arc<Condition>>,
    pub alerts: Vec<AlertRule>,
    /// Line of the `[[monitor]]` table.
    pub line: usize,
}

/// What a monitor checks.
#[derive(Debug, Clone)]
pub enum Check {
    Http(HttpCheck),
    Tcp { target: String },
    Dns(DnsCheck),
    Tls(TlsCheck),
    Icmp { host: String },
    Ssh(SshCheck),
    Heartbeat { token: String, grace: Duration },
}

impl Check {
    /// The kind as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Tcp { .. } => "tcp",
            Check::Dns(_) => "dns",
            Check::Tls(_) => "tls",
            Check::Icmp { .. } => "icmp",
            Check::Ssh(_) => "ssh",
            Check::Heartbeat { .. } => "heartbeat",
        }
    }

    /// What is checked, for tables and alerts (never a secret).
    pub fn target(&self) -> String {
        match self {
            Check::Http(h) => shown_url(&h.url),
            Check::Tcp { target } => target.clone(),
            Check::Dns(d) => format!("{} {}", d.record_type, d.name),
            Check::Tls(t) => t.target.clone(),
            Check::Icmp { host } => host.clone(),
            Check::Ssh(s) => format!("{}: {}", s.target, s.command),
            Check::Heartbeat { .. } => "heartbeat".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, Secret)>,
    pub body: Option<String>,
    pub bearer: Option<Secret>,
    pub basic: Option<(String, Secret)>,
    pub ca_bundle: Option<std::path::PathBuf>,
    pub insecure: bool,
    pub follow_redirects: bool,
    /// A condition reads `.ip`: the host's address is looked up with each check.
    pub resolve_ip: bool,
}

#[derive(Debug, Clone)]
pub struct DnsCheck {
    pub name: String,
    pub record_type: String,
    pub server: Option<std::net::SocketAddr>,
    /// Answers that must all be present.
    pub expected: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TlsCheck {
    /// `host:port`.
    pub target: String,
    /// SNI and the name checked against the certificate (default: the host).
    pub server_name: Option<String>,
    pub ca_bundle: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SshCheck {
    /// `[user@]host[:port]`.
    pub target: String,
    pub command: String,
    pub known_hosts: Option<std::path::PathBuf>,
    pub identity: Option<std::path::PathBuf>,
    pub password: Option<Secret>,
}

/// One alert of a monitor: where to and with which thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub destination: String,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub remind_every: Option<Duration>,
    pub send_resolved: bool,
    /// Said in the alert (e.g. "the API answers slowly: check the pool").
    pub description: Option<String>,
}

/// A destination, defined once under `[destinations.NAME]`.
#[derive(Debug, Clone)]
pub enum Destination {
    Slack {
        webhook: Secret,
    },
    Teams {
        webhook: Secret,
    },
    /// Standard-Webhooks-signed JSON (unsigned without a secret).
    Webhook {
        url: String,
        secret: Option<Secret>,
        headers: Vec<(String, String)>,
    },
    Jira {
        url: String,
        email: String,
        token: Secret,
        project: String,
        issue_type: String,
        labels: Vec<String>,
        priority: Option<String>,
        /// Name of the transition applied on resolve (default `Done`).
        done_transition: String,
    },
    PagerDuty {
        routing_key: Secret,
        /// Events API endpoint (default `https://events.pagerduty.com/v2/enqueue`).
        url: String,
        severity: String,
    },
}

impl Destination {
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Slack { .. } => "slack",
            Destination::Teams { .. } => "teams",
            Destination::Webhook { .. } => "webhook",
            Destination::Jira { .. } => "jira",
            Destination::PagerDuty { .. } => "pagerduty",
        }
    }
}

// ---------------------------------------------------------------- raw TOML

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    settings: SettingsToml,
    #[serde(default)]
    defaults: DefaultsToml,
    #[serde(default)]
    destinations: BTreeMap<String, Spanned<DestinationToml>>,
    #[serde(default)]
    monitor: Vec<Spanned<MonitorToml>>,
    #[serde(default)]
    maintenance: Vec<Spanned<crate::maintenance::MaintenanceToml>>,
    /// `[[template]]`: the keys of `[[monitor]]` plus `selector`, read as a table (placeholders
    /// are replaced before the monitor's keys are checked).
    #[serde(default)]
    template: Vec<Spanned<toml::Table>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettingsToml {
    database: Option<String>,
    listen: Option<String>,
    concurrency: Option<usize>,
    #[serde(default)]
    guard: Vec<String>,
    keep_results: Option<u32>,
    retention: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsToml {
    interval: Option<String>,
    timeout: Option<String>,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    remind_every: Option<String>,
    send_resolved: Option<bool>,
    #[serde(default)]
    alerts: Vec<AlertToml>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum DestinationToml {
    Slack {
        webhook: String,
    },
    Teams {
        webhook: String,
    },
    Webhook {
        url: String,
        secret: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    Jira {
        url: String,
        email: String,
        token: String,
        project: String,
        issue_type: Option<String>,
        #[serde(default)]
        labels: Vec<String>,
        priority: Option<String>,
        done_transition: Option<String>,
    },
    Pagerduty {
        routing_key: String,
        url: Option<String>,
        severity: Option<String>,
    },
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum AlertToml {
    Name(String),
    Rule(AlertRuleToml),
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct AlertRuleToml {
    destination: String,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    remind_every: Option<String>,
    send_resolved: Option<bool>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorToml {
    name: String,
    group: Option<String>,
    kind: String,
    target: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    conditions: Vec<String>,
    alerts: Option<Vec<AlertToml>>,
    // http
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    bearer: Option<String>,
    basic_user: Option<String>,
    basic_password: Option<String>,
    ca_bundle: Option<String>,
    insecure: Option<bool>,
    follow_redirects: Option<bool>,
    // dns
    record_type: Option<String>,
    server: Option<String>,
    #[serde(default)]
    expected: Vec<String>,
    // tls
    server_name: Option<String>,
    // ssh
    command: Option<String>,
    known_hosts: Option<String>,
    identity: Option<String>,
    password: Option<String>,
    // heartbeat
    token: Option<String>,
    grace: Option<String>,
}

/// Parses a duration (`500ms`, `30s`, `5m`, `4h`, `7d` or a bare number of seconds, above
/// zero): the one syntax of every opskit flag and setting.
pub use opskit_http::duration::parse_duration;

/// A URL as shown in tables and alerts: without user info, and with query values hidden
/// (they may carry a key).
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                let names: Vec<String> = u.query_pairs().map(|(k, _)| format!("{k}=…")).collect();
                u.set_query(Some(&names.join("&")));
            }
            u.to_string()
        }
        Err(_) => "<bad URL>".into(),
    }
}

/// Line (1-based) of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

/// Line numbers of increasing offsets, counting each byte of the text once (a file of 10,000
/// monitors is not rescanned from the start for each of them).
struct Lines<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            line: 1,
        }
    }

    fn line(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            (self.at, self.line) = (0, 1);
        }
        self.line += self.text.as_bytes()[self.at..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.at = offset;
        self.line
    }
}

struct Ctx<'a> {
    path: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, line: usize, key: &str, what: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}:{line}: {key}: {what}", self.path))
    }

    fn dur(&self, line: usize, key: &str, v: &Option<String>) -> Result<Option<Duration>> {
        v.as_deref()
            .map(|s| parse_duration(s).map_err(|e| self.err(line, key, e)))
            .transpose()
    }
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses and checks the text of a `monitor.toml` (`path` is used in messages).
pub fn parse(path: &str, text: &str) -> Result<Config> {
    let raw: FileToml = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        let msg = e.message().trim().to_string();
        if line > 0 {
            Error::Config(format!("{path}:{line}: {msg}"))
        } else {
            Error::Config(format!("{path}: {msg}"))
        }
    })?;
    let cx = Ctx { path, text };

    // settings
    let s = raw.settings;
    let settings_line = text.find("[settings]").map_or(1, |o| line_of(cx.text, o));
    let settings = Settings {
        database: s.database,
        listen: s.listen,
        concurrency: s.concurrency.unwrap_or(64).clamp(1, 4096),
        guard: s.guard,
        keep_results: s.keep_results.unwrap_or(1000).max(1),
        retention: cx
            .dur(settings_line, "settings.retention", &s.retention)?
            .unwrap_or(Duration::from_secs(90 * 86400)),
    };
    if let Some(l) = &settings.listen
        && l.parse::<std::net::SocketAddr>().is_err()
    {
        return Err(cx.err(
            settings_line,
            "settings.listen",
            format!("{l:?} is not IP:PORT (e.g. 127.0.0.1:9464)"),
        ));
    }
    for g in &settings.guard {
        if !(g.starts_with("http://") || g.starts_with("https://"))
            && opskit_net::target::Endpoint::parse(g).is_err()
        {
            return Err(cx.err(
                settings_line,
                "settings.guard",
                format!("{g:?} is neither host:port nor an http(s) URL"),
            ));
        }
    }

    // destinations
    let mut destinations = BTreeMap::new();
    let mut lines = Lines::new(text);
    for (name, d) in raw.destinations {
        let line = lines.line(d.span().start);
        let key = |k: &str| format!("destinations.{name}.{k}");
        let dest = match d.into_inner() {
            DestinationToml::Slack { webhook } => Destination::Slack {
                webhook: Secret::parse(&webhook),
            },
            DestinationToml::Teams { webhook } => Destination::Teams {
                webhook: Secret::parse(&webhook),
            },
            DestinationToml::Webhook {
                url,
                secret,
                headers,
            } => {
                check_url(&cx, line, &key("url"), &url)?;
                Destination::Webhook {
                    url,
                    secret: secret.as_deref().map(Secret::parse),
                    headers: headers.into_iter().collect(),
                }
            }
            DestinationToml::Jira {
                url,
                email,
                token,
                project,
                issue_type,
                labels,
                priority,
                done_transition,
            } => {
                check_url(&cx, line, &key("url"), &url)?;
                if project.trim().is_empty() {
                    return Err(cx.err(line, &key("project"), "is empty"));
                }
                Destination::Jira {
                    url,
                    email,
                    token: Secret::parse(&token),
                    project,
                    issue_type: issue_type.unwrap_or_else(|| "Task".into()),
                    labels,
                    priority,
                    done_transition: done_transition.unwrap_or_else(|| "Done".into()),
                }
            }
            DestinationToml::Pagerduty {
                routing_key,
                url,
                severity,
            } => {
                let url = url.unwrap_or_else(|| opskit_notify::pagerduty::EVENTS_URL.into());
                check_url(&cx, line, &key("url"), &url)?;
                let severity = severity.unwrap_or_else(|| "critical".into());
                if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
                    return Err(cx.err(
                        line,
                        &key("severity"),
                        format!("{severity:?}: use critical, error, warning or info"),
                    ));
                }
                Destination::PagerDuty {
                    routing_key: Secret::parse(&routing_key),
                    url,
                    severity,
                }
            }
        };
        destinations.insert(name, dest);
    }

    // defaults
    let d = raw.defaults;
    let defaults_line = text.find("[defaults]").map_or(1, |o| line_of(text, o));
    let def_interval = cx
        .dur(defaults_line, "defaults.interval", &d.interval)?
        .unwrap_or(DEFAULT_INTERVAL);
    let def_timeout = cx
        .dur(defaults_line, "defaults.timeout", &d.timeout)?
        .unwrap_or(DEFAULT_TIMEOUT);
    let def_rule = AlertRule {
        destination: String::new(),
        failure_threshold: d.failure_threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD),
        success_threshold: d.success_threshold.unwrap_or(DEFAULT_SUCCESS_THRESHOLD),
        remind_every: cx.dur(defaults_line, "defaults.remind_every", &d.remind_every)?,
        send_resolved: d.send_resolved.unwrap_or(true),
        description: None,
    };
    for (k, v) in [
        ("defaults.failure_threshold", def_rule.failure_threshold),
        ("defaults.success_threshold", def_rule.success_threshold),
    ] {
        if v == 0 {
            return Err(cx.err(defaults_line, k, "must be at least 1"));
        }
    }

    // monitors
    let defaults = Arc::new(Defaults {
        interval: def_interval,
        timeout: def_timeout,
        rule: def_rule,
        alerts: d.alerts,
        destinations: destinations.keys().cloned().collect(),
    });
    let mut monitors = Vec::new();
    let mut names = BTreeSet::new();
    let mut tokens = BTreeSet::new();
    let mut lines = Lines::new(text);
    for m in raw.monitor {
        let line = lines.line(m.span().start);
        let m = m.into_inner();
        let name = m.name.trim().to_string();
        if name.is_empty() {
            return Err(cx.err(line, "monitor.name", "is empty"));
        }
        let key = |k: &str| format!("monitor[{name}].{k}");
        if !names.insert(name.clone()) {
            return Err(cx.err(line, &key("name"), "another monitor has this name"));
        }
        let label = format!("monitor[{name}]");
        let monitor = build_monitor(&cx, line, &label, name.clone(), &m, &defaults)?;
        if let Check::Heartbeat { token, .. } = &monitor.check
            && !tokens.insert(token.clone())
        {
            return Err(cx.err(line, &key("token"), "another monitor uses this token"));
        }
        monitors.push(monitor);
    }

    // templates: one monitor per inventory server a selector matches (see inventory.rs)
    let mut templates: Vec<Template> = Vec::new();
    let mut lines = Lines::new(text);
    let file: Arc<str> = Arc::from(path);
    for t in raw.template {
        let line = lines.line(t.span().start);
        let t = build_template(&cx, line, t.into_inner(), &defaults, &file)?;
        if let Some(other) = templates.iter().find(|o| o.name == t.name) {
            return Err(cx.err(
                line,
                &format!("template[{}].name", t.name),
                format!("the template of line {} has this name", other.line),
            ));
        }
        templates.push(t);
    }

    let mut maintenance = Vec::new();
    for w in raw.maintenance {
        let line = line_of(text, w.span().start);
        let win = Maintenance::build(w.into_inner())
            .map_err(|(k, e)| cx.err(line, &format!("maintenance.{k}"), e))?;
        for m in &win.monitors {
            if !names.contains(m)
                && !monitors.iter().any(|x| x.group.as_deref() == Some(m))
                && !templates.iter().any(|t| t.group.as_deref() == Some(m))
            {
                return Err(cx.err(
                    line,
                    "maintenance.monitors",
                    format!("{m:?} is neither a monitor nor a group"),
                ));
            }
        }
        maintenance.push(win);
    }

    Ok(Config {
        settings,
        monitors,
        destinations,
        maintenance,
        templates,
        defaults_toml: defaults_text(text),
    })
}

/// The `[defaults]` table of `text` (already parsed and checked) as TOML text of its own.
fn defaults_text(text: &str) -> String {
    let Ok(mut table) = toml::from_str::<toml::Table>(text) else {
        return String::new();
    };
    let Some(defaults) = table.remove("defaults") else {
        return String::new();
    };
    let mut only = toml::Table::new();
    only.insert("defaults".into(), defaults);
    toml::to_string(&only).unwrap_or_default()
}

/// What `[defaults]` and `[destinations]` give every monitor (templates keep a copy to make
/// their monitors later).
struct Defaults {
    interval: Duration,
    timeout: Duration,
    rule: AlertRule,
    alerts: Vec<AlertToml>,
    /// The destinations' names.
    destinations: BTreeSet<String>,
}

/// A `[[template]]`: the keys of a `[[monitor]]` with placeholders (`{hostname}`, `{ip}`,
/// `{env}`, `{id}`), and a `selector`; one monitor per inventory server the selector matches
/// (made by [`crate::inventory::expand`]). Checked at load as a monitor is, over a stand-in
/// server.
#[derive(Clone)]
pub struct Template {
    /// The name as written, e.g. `ssh {hostname}`.
    pub name: String,
    /// The group, when it has no placeholder (a maintenance window may name it).
    pub group: Option<String>,
    pub selector: Selector,
    /// Line of the `[[template]]` table.
    pub line: usize,
    file: Arc<str>,
    /// The table without `selector`.
    raw: toml::Table,
    defaults: Arc<Defaults>,
}

impl std::fmt::Debug for Template {
    // the raw table may hold a literal secret: only what identifies the template
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("selector", &self.selector.to_string())
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// The monitor this template makes for `server`; an error names the file, the line, the
    /// key and the server.
    pub fn instantiate(&self, server: &InventoryServer) -> Result<Monitor> {
        self.make(server).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{msg} (server {})", server.hostname)),
            other => other,
        })
    }

    /// `FILE:LINE: template[NAME] for HOSTNAME: what`.
    pub fn problem(&self, server: &InventoryServer, what: impl std::fmt::Display) -> String {
        format!(
            "{}:{}: template[{}] for {}: {what}",
            self.file, self.line, self.name, server.hostname
        )
    }

    fn make(&self, server: &InventoryServer) -> Result<Monitor> {
        let cx = Ctx {
            path: &self.file,
            text: "",
        };
        let label = format!("template[{}]", self.name);
        let table = substitute_table(&self.raw, server);
        let m: MonitorToml = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| cx.err(self.line, &label, e.message().trim()))?;
        let name = m.name.trim().to_string();
        build_monitor(&cx, self.line, &label, name, &m, &self.defaults)
    }
}

fn substitute_table(t: &toml::Table, server: &InventoryServer) -> toml::Table {
    t.iter()
        .map(|(k, v)| (k.clone(), substitute_value(v, server)))
        .collect()
}

fn substitute_value(v: &toml::Value, server: &InventoryServer) -> toml::Value {
    match v {
        toml::Value::String(s) => toml::Value::String(substitute(s, server)),
        toml::Value::Array(a) => {
            toml::Value::Array(a.iter().map(|x| substitute_value(x, server)).collect())
        }
        toml::Value::Table(t) => toml::Value::Table(substitute_table(t, server)),
        other => other.clone(),
    }
}

/// Every placeholder in `v` is one of [`PLACEHOLDERS`].
fn check_placeholders(cx: &Ctx<'_>, line: usize, key: &str, v: &toml::Value) -> Result<()> {
    match v {
        toml::Value::String(s) => {
            if let Some(p) = placeholders(s)
                .into_iter()
                .find(|p| !PLACEHOLDERS.contains(p))
            {
                let known: Vec<String> = PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect();
                return Err(cx.err(
                    line,
                    key,
                    format!("unknown placeholder {{{p}}}: use {}", known.join(", ")),
                ));
            }
            Ok(())
        }
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_placeholders(cx, line, &format!("{key}[{i}]"), x)),
        toml::Value::Table(t) => t
            .iter()
            .try_for_each(|(k, x)| check_placeholders(cx, line, &format!("{key}.{k}"), x)),
        _ => Ok(()),
    }
}

fn build_template(
    cx: &Ctx<'_>,
    line: usize,
    mut raw: toml::Table,
    defaults: &Arc<Defaults>,
    file: &Arc<str>,
) -> Result<Template> {
    let name = match raw.get("name") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(cx.err(line, "template.name", "is missing")),
    };
    let label = format!("template[{name}]");
    let key = |k: &str| format!("{label}.{k}");
    let selector = match raw.remove("selector") {
        Some(toml::Value::String(s)) => Selector::parse(&s).map_err(|e| {
            cx.err(
                line,
                &key("selector"),
                format!("{e}; {}", SelectorError::hint()),
            )
        })?,
        Some(_) => {
            return Err(cx.err(
                line,
                &key("selector"),
                "is not a string; write e.g. selector = \"env=prod,tag=web\"",
            ));
        }
        None => {
            return Err(cx.err(
                line,
                &key("selector"),
                "is missing: say which servers, e.g. selector = \"env=prod\"",
            ));
        }
    };
    for (k, v) in &raw {
        check_placeholders(cx, line, &key(k), v)?;
    }
    if !placeholders(&name)
        .iter()
        .any(|p| *p == "hostname" || *p == "id")
    {
        return Err(cx.err(
            line,
            &key("name"),
            "needs {hostname} or {id}, so that each server's monitor has a name of its own",
        ));
    }
    let group = match raw.get("group") {
        Some(toml::Value::String(g)) if placeholders(g).is_empty() => Some(g.clone()),
        _ => None,
    };
    let t = Template {
        name,
        group,
        selector,
        line,
        file: file.clone(),
        raw,
        defaults: defaults.clone(),
    };
    // what a server's values cannot change is checked now, over a stand-in server
    t.make(&sample_server())?;
    Ok(t)
}

/// One monitor from its table; `label` (`monitor[NAME]` or `template[NAME]`) starts each key
/// named in an error.
fn build_monitor(
    cx: &Ctx<'_>,
    line: usize,
    label: &str,
    name: String,
    m: &MonitorToml,
    d: &Defaults,
) -> Result<Monitor> {
    let key = |k: &str| format!("{label}.{k}");
    let interval = cx
        .dur(line, &key("interval"), &m.interval)?
        .unwrap_or(d.interval);
    let timeout = cx
        .dur(line, &key("timeout"), &m.timeout)?
        .unwrap_or(d.timeout.min(interval));
    let check = build_check(cx, line, label, m, interval)?;
    let mut conditions = Vec::new();
    for (i, c) in m.conditions.iter().enumerate() {
        let cond = Condition::new(c)
            .map_err(|e| cx.err(line, &format!("{}[{i}]", key("conditions")), e))?;
        conditions.push(Arc::new(cond));
    }
    if let Check::Dns(dns) = &check
        && !dns.expected.is_empty()
    {
        let list = serde_json::to_string(&dns.expected).unwrap_or_default();
        let code = format!("{list} - .answers | length == 0");
        conditions.push(Arc::new(
            Condition::new(&code).map_err(|e| cx.err(line, &key("expected"), e))?,
        ));
    }
    let raw_alerts = m.alerts.clone().unwrap_or_else(|| d.alerts.clone());
    let mut alerts = Vec::new();
    for a in raw_alerts {
        let rule = match a {
            AlertToml::Name(n) => AlertRule {
                destination: n,
                ..d.rule.clone()
            },
            AlertToml::Rule(r) => AlertRule {
                destination: r.destination,
                failure_threshold: r.failure_threshold.unwrap_or(d.rule.failure_threshold),
                success_threshold: r.success_threshold.unwrap_or(d.rule.success_threshold),
                remind_every: cx
                    .dur(line, &key("alerts.remind_every"), &r.remind_every)?
                    .or(d.rule.remind_every),
                send_resolved: r.send_resolved.unwrap_or(d.rule.send_resolved),
                description: r.description.filter(|d| !d.trim().is_empty()),
            },
        };
        if !d.destinations.contains(&rule.destination) {
            let known: Vec<&str> = d.destinations.iter().map(String::as_str).collect();
            return Err(cx.err(
                line,
                &key("alerts"),
                format!(
                    "no destination named {:?} (defined: {})",
                    rule.destination,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if rule.failure_threshold == 0 || rule.success_threshold == 0 {
            return Err(cx.err(line, &key("alerts"), "thresholds must be at least 1"));
        }
        if alerts
            .iter()
            .any(|a: &AlertRule| a.destination == rule.destination)
        {
            return Err(cx.err(
                line,
                &key("alerts"),
                format!("destination {:?} is listed twice", rule.destination),
            ));
        }
        alerts.push(rule);
    }
    Ok(Monitor {
        name,
        group: m.group.clone(),
        check,
        interval,
        timeout,
        conditions,
        alerts,
        line,
    })
}

fn check_url(cx: &Ctx<'_>, line: usize, key: &str, url: &str) -> Result<()> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(cx.err(line, key, format!("{url:?} is not an http(s) URL"))),
    }
}

fn build_check(
    cx: &Ctx<'_>,
    line: usize,
    label: &str,
    m: &MonitorToml,
    interval: Duration,
) -> Result<Check> {
    let key = |k: &str| format!("{label}.{k}");
    // Keys that only some kinds accept.
    let set: Vec<(&str, bool)> = vec![
        ("method", m.method.is_some()),
        ("headers", !m.headers.is_empty()),
        ("body", m.body.is_some()),
        ("bearer", m.bearer.is_some()),
        ("basic_user", m.basic_user.is_some()),
        ("basic_password", m.basic_password.is_some()),
        ("ca_bundle", m.ca_bundle.is_some()),
        ("insecure", m.insecure.is_some()),
        ("follow_redirects", m.follow_redirects.is_some()),
        ("record_type", m.record_type.is_some()),
        ("server", m.server.is_some()),
        ("expected", !m.expected.is_empty()),
        ("server_name", m.server_name.is_some()),
        ("command", m.command.is_some()),
        ("known_hosts", m.known_hosts.is_some()),
        ("identity", m.identity.is_some()),
        ("password", m.password.is_some()),
        ("token", m.token.is_some()),
        ("grace", m.grace.is_some()),
        ("target", m.target.is_some()),
    ];
    let allowed: &[&str] = match m.kind.as_str() {
        "http" => &[
            "method",
            "headers",
            "body",
            "bearer",
            "basic_user",
            "basic_password",
            "ca_bundle",
            "insecure",
            "follow_redirects",
            "target",
        ],
        "tcp" | "icmp" => &["target"],
        "dns" => &["record_type", "server", "expected", "target"],
        "tls" => &["server_name", "ca_bundle", "target"],
        "ssh" => &["command", "known_hosts", "identity", "password", "target"],
        "heartbeat" => &["token", "grace"],
        other => {
            return Err(cx.err(
                line,
                &key("kind"),
                format!("unknown kind {other:?}: use http, tcp, dns, tls, icmp, ssh or heartbeat"),
            ));
        }
    };
    if let Some((k, _)) = set.iter().find(|(k, on)| *on && !allowed.contains(k)) {
        return Err(cx.err(
            line,
            &key(k),
            format!("is not a setting of a {} monitor", m.kind),
        ));
    }
    let target = || -> Result<String> {
        match m.target.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Ok(t.to_string()),
            _ => Err(cx.err(line, &key("target"), "is missing")),
        }
    };
    Ok(match m.kind.as_str() {
        "http" => {
            let url = target()?;
            check_url(cx, line, &key("target"), &url)?;
            let method = m.method.clone().unwrap_or_else(|| "GET".into());
            if opskit_http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).is_err() {
                return Err(cx.err(line, &key("method"), format!("{method:?} is not a method")));
            }
            if m.basic_password.is_some() != m.basic_user.is_some() {
                return Err(cx.err(
                    line,
                    &key("basic_user"),
                    "basic_user and basic_password go together",
                ));
            }
            if m.bearer.is_some() && m.basic_user.is_some() {
                return Err(cx.err(
                    line,
                    &key("bearer"),
                    "choose bearer or basic_user, not both",
                ));
            }
            Check::Http(HttpCheck {
                url,
                method: method.to_ascii_uppercase(),
                headers: m
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Secret::parse(v)))
                    .collect(),
                body: m.body.clone(),
                bearer: m.bearer.as_deref().map(Secret::parse),
                basic: m
                    .basic_user
                    .clone()
                    .zip(m.basic_password.as_deref().map(Secret::parse)),
                ca_bundle: m.ca_bundle.as_ref().map(Into::into),
                insecure: m.insecure.unwrap_or(false),
                follow_redirects: m.follow_redirects.unwrap_or(true),
                resolve_ip: m.conditions.iter().any(|c| c.contains(".ip")),
            })
        }
        "tcp" => {
            let t = target()?;
            opskit_net::target::Endpoint::parse(&t).map_err(|e| cx.err(line, &key("target"), e))?;
            Check::Tcp { target: t }
        }
        "icmp" => Check::Icmp { host: target()? },
        "dns" => {
            let record_type = m
                .record_type
                .clone()
                .unwrap_or_else(|| "A".into())
                .to_ascii_uppercase();
            record_type
                .parse::<opskit_net::dns::RecordKind>()
                .map_err(|e| cx.err(line, &key("record_type"), e))?;
            let server = m
                .server
                .as_deref()
                .map(opskit_net::dns::parse_server)
                .transpose()
                .map_err(|e| cx.err(line, &key("server"), e))?;
            Check::Dns(DnsCheck {
                name: target()?,
                record_type,
                server,
                expected: m.expected.clone(),
            })
        }
        "tls" => {
            let t = target()?;
            opskit_net::target::Endpoint::parse(&t).map_err(|e| cx.err(line, &key("target"), e))?;
            Check::Tls(TlsCheck {
                target: t,
                server_name: m.server_name.clone(),
                ca_bundle: m.ca_bundle.as_ref().map(Into::into),
            })
        }
        "ssh" => {
            let t = target()?;
            opskit_ssh::target::parse_spec(&t).map_err(|e| cx.err(line, &key("target"), e))?;
            let command = match m.command.as_deref() {
                Some(c) if !c.trim().is_empty() => c.to_string(),
                _ => return Err(cx.err(line, &key("command"), "is missing")),
            };
            Check::Ssh(SshCheck {
                target: t,
                command,
                known_hosts: m
                    .known_hosts
                    .as_deref()
                    .map(opskit_ssh::target::expand_tilde),
                identity: m.identity.as_deref().map(opskit_ssh::target::expand_tilde),
                password: m.password.as_deref().map(Secret::parse),
            })
        }
        "heartbeat" => {
            let token = match m.token.as_deref() {
                Some(t)
                    if t.len() >= 8
                        && t.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    t.to_string()
                }
                _ => {
                    return Err(cx.err(
                        line,
                        &key("token"),
                        "needs at least 8 characters of A-Z a-z 0-9 - _",
                    ));
                }
            };
            let grace = cx
                .dur(line, &key("grace"), &m.grace)?
                .unwrap_or(interval / 5);
            Check::Heartbeat { token, grace }
        }
        other => {
            return Err(cx.err(line, &key("kind"), format!("unknown kind {other:?}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[settings]
guard = ["127.0.0.1:53"]

[destinations.slack]
type = "slack"
webhook = "env:SLACK_URL"

[[monitor]]
name = "api"
kind = "http"
target = "http://127.0.0.1:8080/health"
conditions = [".status == 200"]
alerts = ["slack", { destination = "slack2", failure_threshold = 5 }]
"#;

    #[test]
    fn unknown_destination_names_line_and_key() {
        let e = parse("m.toml", GOOD).unwrap_err().to_string();
        assert!(e.starts_with("m.toml:9: monitor[api].alerts:"), "{e}");
        assert!(e.contains("\"slack2\""), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let text = GOOD.replace(", { destination = \"slack2\", failure_threshold = 5 }", "");
        let c = parse("m.toml", &text).unwrap();
        let m = &c.monitors[0];
        assert_eq!(m.interval, DEFAULT_INTERVAL);
        assert_eq!(m.alerts[0].failure_threshold, 3);
        assert_eq!(m.alerts[0].success_threshold, 2);
        assert!(m.alerts[0].send_resolved);
    }

    #[test]
    fn syntax_and_unknown_keys_name_the_line() {
        let e = parse(
            "m.toml",
            "[[monitor]]\nname = \"a\"\nkind = \"tcp\"\ntarget = \"x:1\"\nfrobnicate = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("m.toml:5:"), "{e}");
        assert!(e.contains("frobnicate"), "{e}");
        let e = parse(
            "m.toml",
            "[[monitor]]\nname = \"a\"\nkind = \"tcp\"\ntarget = \"x:1\"\nbody = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("monitor[a].body: is not a setting of a tcp monitor"),
            "{e}"
        );
        let e = parse("m.toml", "[[monitor]]\nname = \"a\"\nkind = \"tcp\"\ntarget = \"x:1\"\nconditions = [\".a ==\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("m.toml:1: monitor[a].conditions[0]"), "{e}");
    }
}
