//! The monitors API's data types (`/api/v1/monitors`, `/api/v1/incidents`): what a monitor
//! looks like to a client (with its origin, its current state and, for the API's own, its
//! definition with secrets redacted), its results, its uptime and the incidents.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Where a monitor comes from: `file` (monitor.toml), `api` (created through this API) or
/// `inventory` (a template of monitor.toml applied to the inventory's servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MonitorOrigin {
    File,
    Api,
    Inventory,
}

impl From<opskit_monitor::service::Origin> for MonitorOrigin {
    fn from(o: opskit_monitor::service::Origin) -> Self {
        match o {
            opskit_monitor::service::Origin::File => MonitorOrigin::File,
            opskit_monitor::service::Origin::Api => MonitorOrigin::Api,
            opskit_monitor::service::Origin::Inventory => MonitorOrigin::Inventory,
        }
    }
}

/// The last result of a monitor: `unknown` before its first check, and while the
/// self-connectivity guard reaches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MonitorState {
    Up,
    Down,
    Unknown,
}

impl MonitorState {
    pub fn parse(s: &str) -> Option<MonitorState> {
        match s {
            "up" => Some(MonitorState::Up),
            "down" => Some(MonitorState::Down),
            "unknown" => Some(MonitorState::Unknown),
            _ => None,
        }
    }
}

/// A monitor.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MonitorView {
    /// The UUID of a monitor created through the API; the name of the others. Either works in
    /// `/api/v1/monitors/{id}`.
    #[schema(example = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")]
    pub id: String,
    #[schema(example = "api-health")]
    pub name: String,
    pub group: Option<String>,
    /// `http`, `tcp`, `dns`, `tls`, `icmp`, `ssh` or `heartbeat`.
    #[schema(example = "http")]
    pub kind: String,
    /// What is checked, never a secret (no password, query values hidden).
    #[schema(example = "https://api.example.com/health")]
    pub target: String,
    /// Time between checks (`30s`, `1m30s`, …).
    #[schema(example = "30s")]
    pub interval: String,
    pub origin: MonitorOrigin,
    /// Monitors from monitor.toml or from inventory templates cannot be changed through the
    /// API.
    pub read_only: bool,
    /// Where a read-only monitor is defined (`/etc/opskit/monitor.toml line 12`).
    pub defined_in: Option<String>,
    /// Whether the engine runs it now. An API monitor does not run while its name is taken by
    /// monitor.toml or while it no longer checks against the file (see `problem`); a new one
    /// runs within moments.
    pub running: bool,
    /// Why a stored monitor does not run (a destination it names left monitor.toml).
    pub problem: Option<String>,
    pub state: MonitorState,
    /// When the current state began (as far back as the kept results go).
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// When it was last checked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_check: Option<OffsetDateTime>,
    /// Why the last check was down or unknown.
    pub last_reason: Option<String>,
    pub last_response_time_ms: Option<f64>,
    /// An API monitor's definition (the keys of a `[[monitor]]` table of monitor.toml), with
    /// `bearer`, `basic_password`, `password`, header values and the target's password and
    /// query values shown as `<redacted>`; null for the others.
    #[schema(value_type = Option<Object>)]
    pub definition: Option<Value>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// A page of monitors.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MonitorPage {
    pub data: Vec<MonitorView>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
}

/// An alert of a monitor (a name under `[destinations]` of monitor.toml, or a rule).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AlertRuleInput {
    #[schema(min_length = 1)]
    destination: String,
    #[schema(minimum = 1)]
    failure_threshold: Option<u32>,
    #[schema(minimum = 1)]
    success_threshold: Option<u32>,
    remind_every: Option<String>,
    send_resolved: Option<bool>,
    description: Option<String>,
}

/// A destination's name, or a rule with thresholds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum AlertInput {
    Destination(String),
    Rule(AlertRuleInput),
}

/// What a client sends to create a monitor: the keys of a `[[monitor]]` table of
/// monitor.toml, checked by the same rules (the README's monitor section lists them). Secrets
/// are values, never `env:`/`file:`/`cmd:` (those are for the file); `ssh` monitors are for
/// the file only (they use the server's SSH keys). Documentation type; the
/// handler checks the body with the file's parser and names the bad field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MonitorInput {
    /// Unique among every monitor (the file's too); not a UUID.
    #[schema(min_length = 1, max_length = 128, example = "api-health")]
    name: String,
    group: Option<String>,
    #[schema(pattern = "^(http|tcp|dns|tls|icmp|heartbeat)$", example = "http")]
    kind: String,
    /// URL (http), `host:port` (tcp, tls), name (dns), host (icmp), `[user@]host[:port]` (ssh).
    #[schema(example = "https://api.example.com/health")]
    target: Option<String>,
    #[schema(example = "30s")]
    interval: Option<String>,
    #[schema(example = "10s")]
    timeout: Option<String>,
    /// jq conditions, all of which must hold (`.status == 200`).
    conditions: Option<Vec<String>>,
    alerts: Option<Vec<AlertInput>>,
    method: Option<String>,
    headers: Option<std::collections::BTreeMap<String, String>>,
    body: Option<String>,
    bearer: Option<String>,
    basic_user: Option<String>,
    basic_password: Option<String>,
    ca_bundle: Option<String>,
    insecure: Option<bool>,
    follow_redirects: Option<bool>,
    record_type: Option<String>,
    server: Option<String>,
    expected: Option<Vec<String>>,
    server_name: Option<String>,
    command: Option<String>,
    known_hosts: Option<String>,
    identity: Option<String>,
    password: Option<String>,
    /// Heartbeat token (at least 8 of `A-Z a-z 0-9 - _`), pinged at `POST /heartbeat/{token}`.
    token: Option<String>,
    grace: Option<String>,
}

/// A JSON Merge Patch (RFC 7396) of a monitor's definition: keys present are set, `null`
/// removes a key; secrets not sent (or sent back as `<redacted>`) are kept. The name cannot
/// change. Documentation type (same keys as [`MonitorInput`]).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct MonitorPatch {
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    group: Option<String>,
    #[schema(pattern = "^(http|tcp|dns|tls|icmp|heartbeat)$")]
    kind: Option<String>,
    target: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    conditions: Option<Vec<String>>,
    alerts: Option<Vec<AlertInput>>,
    method: Option<String>,
    headers: Option<std::collections::BTreeMap<String, Option<String>>>,
    body: Option<String>,
    bearer: Option<String>,
    basic_user: Option<String>,
    basic_password: Option<String>,
    ca_bundle: Option<String>,
    insecure: Option<bool>,
    follow_redirects: Option<bool>,
    record_type: Option<String>,
    server: Option<String>,
    expected: Option<Vec<String>>,
    server_name: Option<String>,
    command: Option<String>,
    known_hosts: Option<String>,
    identity: Option<String>,
    password: Option<String>,
    token: Option<String>,
    grace: Option<String>,
}

/// One raw result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResultView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub status: MonitorState,
    pub response_time_ms: Option<f64>,
    /// Why it was down or unknown.
    pub reason: Option<String>,
}

/// A page of raw results, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResultPage {
    pub data: Vec<ResultView>,
    /// Pass as `before` for the next (older) page; null on the last page. `Link` has it too.
    pub next_before: Option<i64>,
}

/// One UTC day of a monitor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UptimeDay {
    /// The day, `YYYY-MM-DD` (UTC).
    #[schema(example = "2026-11-30")]
    pub day: String,
    pub up: i64,
    pub down: i64,
    pub unknown: i64,
    /// Up among up and down results, in percent; null without any.
    pub uptime: Option<f64>,
    pub mean_response_time_ms: Option<f64>,
}

/// A monitor's uptime: percentages of up among up and down results (unknown ones left out),
/// null without results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UptimeView {
    pub monitor: String,
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// The last 30 days with results, oldest first.
    pub days: Vec<UptimeDay>,
}

/// An alert sent, or being sent, for an incident.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    /// The webhook id (the same on every attempt).
    pub id: String,
    pub destination: String,
    /// `trigger`, `remind` or `resolve`.
    pub event: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// When delivery was given up.
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The Jira issue key or PagerDuty dedup key.
    pub external_key: Option<String>,
}

/// Whether an incident is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Open,
    Resolved,
}

/// An incident: a monitor down past its failure threshold, until it recovered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    pub id: String,
    pub monitor: String,
    pub state: IncidentState,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// Why the check failed when the incident opened.
    pub reason: Option<String>,
    /// Why it closed without its monitor recovering: `monitor removed` when the monitor left
    /// the configuration (deleted through the API, its server gone from the inventory, removed
    /// from monitor.toml) while the incident was open. Null when it recovered or is open.
    pub resolved_reason: Option<String>,
    /// The condition that failed and the values seen (when an alert was sent).
    #[schema(value_type = Option<Object>)]
    pub failed_condition: Option<Value>,
    pub alerts: Vec<AlertView>,
}

/// A page of incidents, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentPage {
    pub data: Vec<IncidentView>,
    /// Pass as `before` for the next (older) page; null on the last page. `Link` has it too.
    pub next_before: Option<i64>,
}

/// `ms` since the epoch as a time (the epoch itself when out of range).
pub fn time_of_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A duration the way monitor.toml writes one (`500ms`, `30s`, `1m30s`, `2h`, `1d`).
pub fn duration_text(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = (ms / 1000) as u64;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_as_in_monitor_toml() {
        assert_eq!(duration_text(Duration::from_secs(30)), "30s");
        assert_eq!(duration_text(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration_text(Duration::from_secs(86_400 + 3600)), "1d1h");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        for d in ["30s", "1m30s", "1d1h", "1500ms"] {
            let parsed = opskit_monitor::config::parse_duration(d).unwrap();
            assert_eq!(duration_text(parsed), d);
        }
    }
}
