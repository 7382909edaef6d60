//! `opskit monitor import-gatus`: turns a Gatus configuration (YAML) into a `monitor.toml`.
//!
//! What is converted: endpoints (`http(s)://`, `tcp://`, `icmp://`, `tls://`, `ssh://` and DNS
//! endpoints) with name, group, method, headers, body (GraphQL wrapped), interval,
//! `client.timeout`/`insecure`/`ignore-redirect`; external endpoints with a heartbeat; conditions
//! with Gatus' placeholders and functions, rewritten as jq over our result objects; alerts
//! (thresholds, `send-on-resolved`, `enabled`, `description`, provider `default-alert`) and the
//! providers slack, teams, teams-workflows, custom (as a signed webhook) and pagerduty, with
//! their group `overrides`; `connectivity.checker` (our guard), `concurrency` and the global
//! `maintenance` window. `${NAME}` (and `$NAME`) references in secrets become `env:NAME`.
//!
//! Whatever cannot be converted is returned in [`Conversion::notes`] (and written as a comment
//! at the top of the output): nothing is dropped silently.
//!
//! Semantics kept from Gatus (read from its documentation and code, none copied):
//! - `==`/`!=` compare text; when both sides are integers they compare as numbers;
//! - `<`, `<=`, `>`, `>=` compare integers: `[RESPONSE_TIME]` in whole milliseconds, durations
//!   (`48h`) in milliseconds, decimals cut to integers;
//! - `pat()` is a glob (`*`, `?`, `[…]`) matched against the whole text, `/` ignored;
//! - `any(a, b)` matches one of the listed texts exactly;
//! - `len()` counts the items of an array, else the characters of the (minified) value;
//! - `has()` says whether the JSON path leads somewhere;
//! - `[BODY]` of a DNS endpoint is the last answer (TXT answers joined by newlines), of an SSH
//!   endpoint the command's output; `send-on-resolved` defaults to false, thresholds to 3 and 2.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value};

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The `monitor.toml` text (notes included as comments).
    pub toml: String,
    /// What could not be converted, or was converted with a change the user must know about.
    pub notes: Vec<Note>,
}

impl Conversion {
    /// Items that were not converted (the exit status of `import-gatus` depends on it).
    pub fn not_converted(&self) -> usize {
        self.notes
            .iter()
            .filter(|n| n.kind == NoteKind::NotConverted)
            .count()
    }
}

/// One thing the user should read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: NoteKind,
    /// Where in the Gatus file: `endpoints[2] "api": conditions[1]`.
    pub at: String,
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// Left out of the output.
    NotConverted,
    /// Converted, but it behaves or is used differently.
    Changed,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = match self.kind {
            NoteKind::NotConverted => "not converted",
            NoteKind::Changed => "changed",
        };
        write!(f, "{k}: {}: {}", self.at, self.what)
    }
}

/// The check kinds a Gatus endpoint becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Tcp,
    Icmp,
    Dns,
    Tls,
    Ssh,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Icmp => "icmp",
            Kind::Dns => "dns",
            Kind::Tls => "tls",
            Kind::Ssh => "ssh",
        }
    }
}

/// Converts the text of a Gatus configuration. The error is for input that is not YAML or
/// not a Gatus configuration at all.
pub fn convert(yaml: &str) -> Result<Conversion, String> {
    let doc: Value =
        serde_saphyr::from_str(yaml).map_err(|e| format!("not a readable YAML file: {e}"))?;
    let Value::Object(doc) = doc else {
        return Err("not a Gatus configuration: the top level is not a mapping".into());
    };
    let mut cx = Cx::default();
    cx.run(&doc)?;
    Ok(cx.finish())
}

#[derive(Default)]
struct Cx {
    notes: Vec<Note>,
    settings: Vec<String>,
    destinations: BTreeMap<String, String>,
    /// Gatus provider type → (its settings, the default alert).
    providers: BTreeMap<String, Map<String, Value>>,
    monitors: Vec<String>,
    maintenance: Vec<String>,
    names: BTreeMap<String, usize>,
}

const PROVIDERS: &[&str] = &["slack", "teams", "teams-workflows", "custom", "pagerduty"];

impl Cx {
    fn note(&mut self, kind: NoteKind, at: impl Into<String>, what: impl Into<String>) {
        self.notes.push(Note {
            kind,
            at: at.into(),
            what: what.into(),
        });
    }

    fn skip(&mut self, at: impl Into<String>, what: impl Into<String>) {
        self.note(NoteKind::NotConverted, at, what);
    }

    fn run(&mut self, doc: &Map<String, Value>) -> Result<(), String> {
        if !doc.contains_key("endpoints") && !doc.contains_key("external-endpoints") {
            return Err(
                "not a Gatus configuration: it has neither `endpoints` nor `external-endpoints`"
                    .into(),
            );
        }
        for (k, v) in doc {
            match k.as_str() {
                "endpoints" | "external-endpoints" | "alerting" => {}
                "concurrency" => match v.as_u64() {
                    Some(0) => self.settings.push("concurrency = 4096".into()),
                    Some(n) => self.settings.push(format!("concurrency = {n}")),
                    None => self.skip("concurrency", format!("{v} is not a number")),
                },
                "connectivity" => {
                    match v.pointer("/checker/target").and_then(Value::as_str) {
                        Some(t) => self.settings.push(format!("guard = [{}]", q(t))),
                        None => self.skip("connectivity", "no checker.target"),
                    }
                    if v.pointer("/checker/interval").is_some() {
                        self.note(
                            NoteKind::Changed,
                            "connectivity.checker.interval",
                            "the guard is asked when a check fails (answer kept 5 s), not on an interval",
                        );
                    }
                }
                "maintenance" => self.maintenance(v, "maintenance", None),
                "storage" => self.note(
                    NoteKind::NotConverted,
                    "storage",
                    "results go to the monitor database (settings.database or --database: SQLite or PostgreSQL); Gatus' history is not imported",
                ),
                "metrics" => self.note(
                    NoteKind::Changed,
                    "metrics",
                    "`opskit monitor run --listen ADDR` always serves /metrics",
                ),
                other => self.skip(
                    other,
                    "no equivalent in opskit monitor (web, UI, security and the like)",
                ),
            }
        }
        if let Some(Value::Object(alerting)) = doc.get("alerting") {
            for (k, v) in alerting {
                if !PROVIDERS.contains(&k.as_str()) {
                    self.skip(
                        format!("alerting.{k}"),
                        "provider not supported (slack, teams, teams-workflows, custom and pagerduty are; Jira and signed webhooks can be added by hand)",
                    );
                    continue;
                }
                match v {
                    Value::Object(m) => {
                        self.providers.insert(k.clone(), m.clone());
                    }
                    _ => self.skip(format!("alerting.{k}"), "not a mapping"),
                }
            }
        }
        if let Some(eps) = doc.get("endpoints") {
            let Value::Array(eps) = eps else {
                return Err("`endpoints` is not a list".into());
            };
            for (i, ep) in eps.iter().enumerate() {
                self.endpoint(i, ep);
            }
        }
        if let Some(eps) = doc.get("external-endpoints") {
            let Value::Array(eps) = eps else {
                return Err("`external-endpoints` is not a list".into());
            };
            for (i, ep) in eps.iter().enumerate() {
                self.external(i, ep);
            }
        }
        Ok(())
    }

    fn unique_name(&mut self, name: &str) -> String {
        let n = self.names.entry(name.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            name.to_string()
        } else {
            format!("{name} ({n})")
        }
    }

    fn endpoint(&mut self, i: usize, epv: &Value) {
        let Value::Object(ep) = epv else {
            self.skip(format!("endpoints[{i}]"), "not a mapping");
            return;
        };
        let name = ep.get("name").and_then(Value::as_str).unwrap_or_default();
        let at = format!("endpoints[{i}] {name:?}");
        if name.trim().is_empty() {
            self.skip(at, "no name");
            return;
        }
        if ep.get("enabled") == Some(&Value::Bool(false)) {
            self.note(
                NoteKind::Changed,
                at,
                "disabled in Gatus (enabled: false): left out",
            );
            return;
        }
        let group = ep.get("group").and_then(Value::as_str).map(str::to_string);
        let url = ep
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut lines: Vec<String> = Vec::new();
        let kind = if ep.contains_key("dns") {
            Kind::Dns
        } else {
            match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()) {
                Some(s) if s == "http" || s == "https" => Kind::Http,
                Some(s) if s == "tcp" => Kind::Tcp,
                Some(s) if s == "icmp" => Kind::Icmp,
                Some(s) if s == "tls" => Kind::Tls,
                Some(s) if s == "ssh" => Kind::Ssh,
                Some(s) => {
                    self.skip(
                        at,
                        format!(
                            "{s}:// endpoints have no equivalent (http(s), tcp, icmp, tls, ssh and dns do)"
                        ),
                    );
                    return;
                }
                None => {
                    self.skip(at, format!("url {url:?} has no scheme"));
                    return;
                }
            }
        };
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let host_port = rest
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .to_string();
        let mut handled: Vec<&str> = vec![
            "name",
            "group",
            "url",
            "enabled",
            "conditions",
            "alerts",
            "interval",
            "client",
            "ui",
            "extra-labels",
            "maintenance-windows",
        ];

        // Target and kind settings.
        match kind {
            Kind::Http => {
                lines.push(format!("target = {}", q(&url)));
                handled.extend(["method", "headers", "body", "graphql"]);
                if let Some(m) = ep.get("method").and_then(Value::as_str)
                    && !m.eq_ignore_ascii_case("GET")
                {
                    lines.push(format!("method = {}", q(&m.to_ascii_uppercase())));
                }
                if let Some(Value::Object(h)) = ep.get("headers") {
                    let mut hs = Vec::new();
                    for (k, v) in h {
                        let v = scalar_text(v);
                        if k.eq_ignore_ascii_case("authorization")
                            && let Some(tok) = v.strip_prefix("Bearer ")
                            && let Some(s) = self.secret(&format!("{at}: headers.{k}"), tok)
                        {
                            lines.push(format!("bearer = {}", q(&s)));
                            continue;
                        }
                        match self.secret(&format!("{at}: headers.{k}"), &v) {
                            Some(s) => hs.push(format!("{} = {}", q(k), q(&s))),
                            None => continue,
                        }
                    }
                    if !hs.is_empty() {
                        lines.push(format!("headers = {{ {} }}", hs.join(", ")));
                    }
                }
                if let Some(b) = ep.get("body").and_then(Value::as_str)
                    && !b.is_empty()
                {
                    let mut body = b.replace("[ENDPOINT_NAME]", name);
                    body = body.replace("[ENDPOINT_GROUP]", group.as_deref().unwrap_or(""));
                    body = body.replace("[ENDPOINT_URL]", &url);
                    if body.contains("[RANDOM_STRING_") || body.contains("[LOCAL_ADDRESS]") {
                        self.skip(
                            format!("{at}: body"),
                            "[RANDOM_STRING_N] and [LOCAL_ADDRESS] are not replaced: the body is sent as written",
                        );
                    }
                    if ep.get("graphql") == Some(&Value::Bool(true)) {
                        body = serde_json::json!({ "query": body }).to_string();
                    }
                    lines.push(format!("body = {}", q(&body)));
                }
            }
            Kind::Tcp | Kind::Tls => lines.push(format!("target = {}", q(&host_port))),
            Kind::Icmp => lines.push(format!("target = {}", q(&host_port))),
            Kind::Dns => {
                let qname = epv
                    .pointer("/dns/query-name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let qtype = epv
                    .pointer("/dns/query-type")
                    .and_then(Value::as_str)
                    .unwrap_or("A");
                if qname.is_empty() {
                    self.skip(at, "dns.query-name is missing");
                    return;
                }
                lines.push(format!("target = {}", q(qname)));
                lines.push(format!("record_type = {}", q(&qtype.to_ascii_uppercase())));
                let server = if url.contains(':')
                    && !url.starts_with('[')
                    && url.matches(':').count() == 1
                {
                    url.clone()
                } else if url.is_empty() {
                    String::new()
                } else {
                    format!("{url}:53")
                };
                if !server.is_empty() {
                    lines.push(format!("server = {}", q(&server)));
                }
                handled.push("dns");
            }
            Kind::Ssh => {
                handled.extend(["ssh", "body"]);
                let user = epv
                    .pointer("/ssh/username")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let target = if user.is_empty() {
                    host_port.clone()
                } else {
                    format!("{user}@{host_port}")
                };
                lines.push(format!("target = {}", q(&target)));
                let command = ep
                    .get("body")
                    .and_then(Value::as_str)
                    .and_then(|b| serde_json::from_str::<Value>(b).ok())
                    .and_then(|v| v.get("command").and_then(Value::as_str).map(String::from));
                match command {
                    Some(c) => lines.push(format!("command = {}", q(&c))),
                    None => {
                        // Gatus connects without a command; `true` proves the same.
                        lines.push("command = \"true\"".into());
                        self.note(
                            NoteKind::Changed,
                            format!("{at}: body"),
                            "no command given: the check runs `true`",
                        );
                    }
                }
                if let Some(p) = epv.pointer("/ssh/password").and_then(Value::as_str)
                    && !p.is_empty()
                    && let Some(s) = self.secret(&format!("{at}: ssh.password"), p)
                {
                    lines.push(format!("password = {}", q(&s)));
                }
                if epv
                    .pointer("/ssh/private-key")
                    .and_then(Value::as_str)
                    .is_some_and(|k| !k.is_empty())
                {
                    self.skip(
                        format!("{at}: ssh.private-key"),
                        "an inline key is not copied: save it to a file and set `identity = \"PATH\"`",
                    );
                }
                self.note(
                    NoteKind::Changed,
                    at.to_string(),
                    "ssh checks verify the host key against known_hosts (Gatus does not)",
                );
            }
        }
        for k in ep.keys() {
            if !handled.contains(&k.as_str()) {
                self.skip(
                    format!("{at}: {k}"),
                    format!("not supported for a {} check", kind.as_str()),
                );
            }
        }

        // Interval and client.
        if let Some(v) = ep.get("interval") {
            match go_duration(&scalar_text(v)) {
                Some(d) => lines.push(format!("interval = {}", q(&dur(d)))),
                None => self.skip(format!("{at}: interval"), format!("{v} is not a duration")),
            }
        }
        if let Some(Value::Object(client)) = ep.get("client") {
            for (k, v) in client {
                match (k.as_str(), kind) {
                    ("timeout", _) => match go_duration(&scalar_text(v)) {
                        Some(d) => lines.push(format!("timeout = {}", q(&dur(d)))),
                        None => self.skip(
                            format!("{at}: client.timeout"),
                            format!("{v} is not a duration"),
                        ),
                    },
                    ("insecure", Kind::Http) => {
                        if v == &Value::Bool(true) {
                            lines.push("insecure = true".into());
                        }
                    }
                    ("ignore-redirect", Kind::Http) => {
                        if v == &Value::Bool(true) {
                            lines.push("follow_redirects = false".into());
                        }
                    }
                    (other, _) => self.skip(
                        format!("{at}: client.{other}"),
                        format!("no equivalent for a {} check", kind.as_str()),
                    ),
                }
            }
        }

        // Conditions.
        let mut conditions = Vec::new();
        let mut cert_conditions = Vec::new();
        if let Some(Value::Array(cs)) = ep.get("conditions") {
            for (j, c) in cs.iter().enumerate() {
                let text = scalar_text(c);
                match condition(&text, kind) {
                    Ok(Cond::Jq(jq)) => conditions.push((text, jq)),
                    Ok(Cond::Certificate(jq)) => cert_conditions.push((text, jq)),
                    Err(why) => self.skip(format!("{at}: conditions[{j}] `{text}`"), why),
                }
            }
        }
        if conditions.is_empty() && kind == Kind::Http {
            // Gatus with no condition: nothing can fail but the connection; ours defaults to 2xx/3xx.
            conditions.push(("(connected)".into(), "true".into()));
        }
        if !conditions.is_empty() {
            let mut s = String::from("conditions = [\n");
            for (text, jq) in &conditions {
                let _ = writeln!(s, "  {},  # {}", q(jq), one_line(text));
            }
            s.push(']');
            lines.push(s);
        }

        // Alerts.
        let alerts = self.alerts(&at, ep.get("alerts"), group.as_deref());
        if !alerts.is_empty() {
            lines.push(format!("alerts = [\n  {},\n]", alerts.join(",\n  ")));
        }

        if let Some(v) = ep.get("maintenance-windows") {
            match v {
                Value::Array(ws) => {
                    for (j, w) in ws.iter().enumerate() {
                        self.maintenance(w, &format!("{at}: maintenance-windows[{j}]"), Some(name));
                    }
                }
                _ => self.skip(format!("{at}: maintenance-windows"), "not a list"),
            }
        }

        let unique = self.unique_name(name);
        if unique != name {
            self.note(
                NoteKind::Changed,
                &at,
                format!("renamed {unique:?}: names must be unique"),
            );
        }
        let mut m = format!("[[monitor]]\nname = {}\n", q(&unique));
        if let Some(g) = &group {
            let _ = writeln!(m, "group = {}", q(g));
        }
        let _ = writeln!(m, "kind = {}", q(kind.as_str()));
        for l in &lines {
            m.push_str(l);
            m.push('\n');
        }
        self.monitors.push(m);

        // [CERTIFICATE_EXPIRATION] of an https endpoint: a companion TLS monitor.
        if !cert_conditions.is_empty() {
            let port = if host_port.contains(':') { "" } else { ":443" };
            let cname = self.unique_name(&format!("{name} certificate"));
            let mut m = format!("[[monitor]]\nname = {}\n", q(&cname));
            if let Some(g) = &group {
                let _ = writeln!(m, "group = {}", q(g));
            }
            let _ = writeln!(
                m,
                "kind = \"tls\"\ntarget = {}",
                q(&format!("{host_port}{port}"))
            );
            for l in &lines {
                if l.starts_with("interval") || l.starts_with("timeout") || l.starts_with("alerts")
                {
                    m.push_str(l);
                    m.push('\n');
                }
            }
            let mut s = String::from("conditions = [\n");
            for (text, jq) in &cert_conditions {
                let _ = writeln!(s, "  {},  # {}", q(jq), one_line(text));
            }
            s.push_str("]\n");
            m.push_str(&s);
            self.monitors.push(m);
            self.note(
                NoteKind::Changed,
                at,
                format!(
                    "[CERTIFICATE_EXPIRATION] is checked by the companion tls monitor {cname:?}"
                ),
            );
        }
    }

    fn external(&mut self, i: usize, ep: &Value) {
        let name = ep.get("name").and_then(Value::as_str).unwrap_or_default();
        let at = format!("external-endpoints[{i}] {name:?}");
        if name.trim().is_empty() {
            self.skip(at, "no name");
            return;
        }
        if ep.get("enabled") == Some(&Value::Bool(false)) {
            self.note(
                NoteKind::Changed,
                at,
                "disabled in Gatus (enabled: false): left out",
            );
            return;
        }
        let Some(interval) = ep
            .pointer("/heartbeat/interval")
            .map(scalar_text)
            .and_then(|s| go_duration(&s))
        else {
            self.skip(
                at,
                "an external endpoint without heartbeat.interval reports results that opskit does not receive (a heartbeat needs an interval)",
            );
            return;
        };
        let token = ep.get("token").and_then(Value::as_str).unwrap_or_default();
        let token_ok = token.len() >= 8
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let token = if token_ok {
            token.to_string()
        } else {
            let t = format!("{:032x}", rand::random::<u128>());
            self.note(
                NoteKind::Changed,
                &at,
                format!(
                    "the token is not 8+ characters of A-Z a-z 0-9 - _: a new one was made ({t})"
                ),
            );
            t
        };
        self.note(
            NoteKind::Changed,
            &at,
            format!("pushers now call POST /heartbeat/{token} on `opskit monitor run --listen`; a push means up (success=false is not read)"),
        );
        let group = ep.get("group").and_then(Value::as_str);
        let unique = self.unique_name(name);
        let mut m = format!("[[monitor]]\nname = {}\n", q(&unique));
        if let Some(g) = group {
            let _ = writeln!(m, "group = {}", q(g));
        }
        let _ = writeln!(
            m,
            "kind = \"heartbeat\"\ntoken = {}\ninterval = {}\ngrace = \"1s\"",
            q(&token),
            q(&dur(interval))
        );
        let alerts = self.alerts(&at, ep.get("alerts"), group);
        if !alerts.is_empty() {
            let _ = writeln!(m, "alerts = [\n  {},\n]", alerts.join(",\n  "));
        }
        for k in ep
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !["name", "group", "token", "heartbeat", "alerts", "enabled"].contains(&k.as_str()) {
                self.skip(format!("{at}: {k}"), "not supported for a heartbeat");
            }
        }
        self.monitors.push(m);
    }

    /// A global or per-endpoint maintenance window.
    fn maintenance(&mut self, v: &Value, at: &str, monitor: Option<&str>) {
        if v.get("enabled") == Some(&Value::Bool(false)) {
            return;
        }
        let (Some(start), Some(duration)) = (
            v.get("start").and_then(Value::as_str),
            v.get("duration")
                .map(scalar_text)
                .and_then(|d| go_duration(&d)),
        ) else {
            self.skip(at, "needs start and duration");
            return;
        };
        let mut m = String::from("[[maintenance]]\n");
        let _ = writeln!(m, "name = {}", q(monitor.unwrap_or("gatus maintenance")));
        if let Some(n) = monitor {
            let _ = writeln!(m, "monitors = [{}]", q(n));
        }
        let tz = v.get("timezone").and_then(Value::as_str).unwrap_or("UTC");
        let _ = writeln!(m, "timezone = {}", q(tz));
        if let Some(Value::Array(days)) = v.get("every") {
            let d: Vec<String> = days
                .iter()
                .filter_map(Value::as_str)
                .map(|d| q(&d.chars().take(3).collect::<String>().to_ascii_lowercase()))
                .collect();
            if !d.is_empty() {
                let _ = writeln!(m, "days = [{}]", d.join(", "));
            }
        }
        let _ = writeln!(m, "start = {}\nduration = {}", q(start), q(&dur(duration)));
        self.maintenance.push(m);
    }

    /// A secret value: `${NAME}` or `$NAME` becomes `env:NAME`; text mixing a reference with
    /// other characters cannot be expressed (reported, `None`).
    fn secret(&mut self, at: &str, v: &str) -> Option<String> {
        let v = v.trim();
        let name = v
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .or_else(|| v.strip_prefix('$'));
        match name {
            Some(n)
                if !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Some(format!("env:{n}"))
            }
            _ if v.contains('$') && !v.contains("$$") => {
                self.skip(
                    at,
                    "a value mixing text and an environment reference: put the whole value in one variable and write env:NAME",
                );
                None
            }
            _ => Some(v.replace("$$", "$")),
        }
    }

    /// The destination for provider `ty` (and the group override, if any); created on first use.
    fn destination(&mut self, at: &str, ty: &str, group: Option<&str>) -> Option<String> {
        let Some(cfg) = self.providers.get(ty).cloned() else {
            self.skip(
                at,
                format!(
                    "alerting.{ty} is not configured (or not supported): this alert is left out"
                ),
            );
            return None;
        };
        let over = group.and_then(|g| {
            cfg.get("overrides")
                .and_then(Value::as_array)
                .and_then(|o| {
                    o.iter()
                        .find(|x| x.get("group").and_then(Value::as_str) == Some(g))
                        .cloned()
                })
        });
        let mut eff = cfg.clone();
        let name = match (&over, group) {
            (Some(Value::Object(o)), Some(g)) => {
                for (k, v) in o {
                    if k != "group" {
                        eff.insert(k.clone(), v.clone());
                    }
                }
                format!("{ty}-{}", slug(g))
            }
            _ => ty.to_string(),
        };
        if self.destinations.contains_key(&name) {
            return Some(name);
        }
        let dat = format!("alerting.{ty}");
        let url_of = |k: &str| {
            eff.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let body = match ty {
            "slack" | "teams" | "teams-workflows" => {
                let u = url_of("webhook-url");
                if u.is_empty() {
                    self.skip(&dat, "webhook-url is missing");
                    return None;
                }
                let s = self.secret(&format!("{dat}.webhook-url"), &u)?;
                let t = if ty == "slack" { "slack" } else { "teams" };
                if ty == "teams" {
                    self.note(
                        NoteKind::Changed,
                        &dat,
                        "sent as an Adaptive Card (Workflows); Office 365 connectors are retired",
                    );
                }
                format!("type = \"{t}\"\nwebhook = {}\n", q(&s))
            }
            "pagerduty" => {
                let k = url_of("integration-key");
                if k.is_empty() {
                    self.skip(&dat, "integration-key is missing");
                    return None;
                }
                let s = self.secret(&format!("{dat}.integration-key"), &k)?;
                format!("type = \"pagerduty\"\nrouting_key = {}\n", q(&s))
            }
            "custom" => {
                let u = url_of("url");
                if u.is_empty() {
                    self.skip(&dat, "url is missing");
                    return None;
                }
                if u.contains("[") {
                    self.skip(
                        format!("{dat}.url"),
                        "placeholders in the URL are not replaced: the alert data is in the JSON body",
                    );
                }
                let mut s = format!("type = \"webhook\"\nurl = {}\n", q(&u));
                if let Some(Value::Object(h)) = eff.get("headers") {
                    let mut hs = Vec::new();
                    for (k, v) in h {
                        // Header values of a webhook destination are plain text.
                        let v = scalar_text(v);
                        if v.contains('$') {
                            self.skip(
                                format!("{dat}.headers.{k}"),
                                "webhook header values are plain text: an environment reference cannot be kept",
                            );
                            continue;
                        }
                        hs.push(format!("{} = {}", q(k), q(&v)));
                    }
                    if !hs.is_empty() {
                        let _ = writeln!(s, "headers = {{ {} }}", hs.join(", "));
                    }
                }
                if eff.contains_key("body")
                    || eff.contains_key("method")
                    || eff.contains_key("placeholders")
                {
                    self.note(
                        NoteKind::Changed,
                        &dat,
                        "sent as a POST of opskit's alert JSON (Standard Webhooks; add `secret` to sign it): the custom method, body template and placeholders are not used",
                    );
                }
                s
            }
            _ => return None,
        };
        for k in eff.keys() {
            let known: &[&str] = match ty {
                "custom" => &[
                    "url",
                    "method",
                    "body",
                    "headers",
                    "placeholders",
                    "default-alert",
                    "overrides",
                ],
                "pagerduty" => &["integration-key", "default-alert", "overrides"],
                _ => &["webhook-url", "title", "default-alert", "overrides"],
            };
            if !known.contains(&k.as_str()) {
                self.skip(format!("{dat}.{k}"), "not supported");
            }
        }
        self.destinations.insert(name.clone(), body);
        Some(name)
    }

    /// The alert rules of an endpoint.
    fn alerts(&mut self, at: &str, alerts: Option<&Value>, group: Option<&str>) -> Vec<String> {
        let Some(Value::Array(alerts)) = alerts else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        for (j, a) in alerts.iter().enumerate() {
            let aat = format!("{at}: alerts[{j}]");
            let Some(ty) = a.get("type").and_then(Value::as_str) else {
                self.skip(aat, "no type");
                continue;
            };
            // The provider's default-alert fills what the alert leaves out.
            let mut rule: Map<String, Value> = self
                .providers
                .get(ty)
                .and_then(|p| p.get("default-alert"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Value::Object(m) = a {
                for (k, v) in m {
                    rule.insert(k.clone(), v.clone());
                }
            }
            if rule.get("enabled") == Some(&Value::Bool(false)) {
                self.note(
                    NoteKind::Changed,
                    aat,
                    format!("{ty} alert disabled in Gatus: left out"),
                );
                continue;
            }
            if rule.contains_key("provider-override") {
                self.skip(
                    format!("{aat}.provider-override"),
                    "define another destination and name it in this alert",
                );
            }
            let Some(mut dest) = self.destination(&aat, ty, group) else {
                continue;
            };
            // Gatus allows the same provider twice (e.g. at 3 and at 5 failures); ours wants one
            // destination per alert: a second destination with the same settings.
            let n = used.entry(dest.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                let copy = format!("{dest}-{n}");
                if let Some(body) = self.destinations.get(&dest).cloned() {
                    self.destinations.entry(copy.clone()).or_insert(body);
                }
                dest = copy;
            }
            let mut parts = vec![format!("destination = {}", q(&dest))];
            let ft = rule
                .get("failure-threshold")
                .and_then(Value::as_u64)
                .unwrap_or(3);
            let st = rule
                .get("success-threshold")
                .and_then(Value::as_u64)
                .unwrap_or(2);
            parts.push(format!("failure_threshold = {}", ft.max(1)));
            parts.push(format!("success_threshold = {}", st.max(1)));
            let resolved = rule.get("send-on-resolved") == Some(&Value::Bool(true));
            parts.push(format!("send_resolved = {resolved}"));
            if let Some(r) = rule.get("minimum-reminder-interval").map(scalar_text)
                && let Some(d) = go_duration(&r)
            {
                parts.push(format!("remind_every = {}", q(&dur(d))));
            }
            if let Some(d) = rule.get("description").and_then(Value::as_str)
                && !d.is_empty()
            {
                parts.push(format!("description = {}", q(d)));
            }
            for k in rule.keys() {
                if ![
                    "type",
                    "enabled",
                    "failure-threshold",
                    "success-threshold",
                    "send-on-resolved",
                    "description",
                    "minimum-reminder-interval",
                    "provider-override",
                ]
                .contains(&k.as_str())
                {
                    self.skip(format!("{aat}.{k}"), "not supported");
                }
            }
            out.push(format!("{{ {} }}", parts.join(", ")));
        }
        out
    }

    fn finish(self) -> Conversion {
        let mut t = String::from(
            "# Converted from a Gatus configuration by `opskit monitor import-gatus`.\n\
             # Check it with `opskit monitor validate FILE`, try it with `opskit monitor check -c FILE`.\n",
        );
        if self.notes.is_empty() {
            t.push_str("# Everything was converted.\n");
        } else {
            t.push_str("#\n# Read before use:\n");
            for n in &self.notes {
                let _ = writeln!(t, "#   {}", one_line(&n.to_string()));
            }
        }
        t.push('\n');
        if !self.settings.is_empty() {
            t.push_str("[settings]\n");
            for s in &self.settings {
                t.push_str(s);
                t.push('\n');
            }
            t.push('\n');
        }
        for (name, body) in &self.destinations {
            let key = if name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                name.clone()
            } else {
                q(name)
            };
            let _ = writeln!(t, "[destinations.{key}]\n{body}");
        }
        for m in &self.monitors {
            t.push_str(m);
            t.push('\n');
        }
        for m in &self.maintenance {
            t.push_str(m);
            t.push('\n');
        }
        Conversion {
            toml: t,
            notes: self.notes,
        }
    }
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A Go duration (`1m30s`, `500ms`, `2h`, `1.5h`) or a bare number of seconds.
fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<f64>() {
        return (n > 0.0 && n.is_finite()).then(|| Duration::from_secs_f64(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let i = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..i].parse().ok()?;
        rest = &rest[i..];
        let j = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..j] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[j..];
    }
    (total > 0.0).then(|| Duration::from_secs_f64(total))
}

/// A duration in our spelling, the largest whole unit.
fn dur(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        let s = ms / 1000;
        if s.is_multiple_of(3600) {
            format!("{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        }
    }
}

// ------------------------------------------------------------------------------- conditions

/// A converted condition.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Jq(String),
    /// About the certificate of an https endpoint: goes to a companion tls monitor.
    Certificate(String),
}

/// What an operand is.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// A value of the result: jq, and how it compares.
    Value { jq: String, ty: Ty, cert: bool },
    /// `pat(glob)`.
    Pattern(String),
    /// `any(a, b, …)`.
    Any(Vec<String>),
    /// A literal.
    Lit(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Num,
    Bool,
    /// Text (our value is a string).
    Text,
    /// A JSON value from a path: text when compared as text.
    Json,
}

/// Converts one Gatus condition for a check of `kind`.
fn condition(text: &str, kind: Kind) -> Result<Cond, String> {
    const OPS: [&str; 6] = [" == ", " != ", " <= ", " >= ", " > ", " < "];
    let Some(op) = OPS.iter().find(|o| text.contains(**o)) else {
        return Err("no comparison (==, !=, <, <=, >, >=) in it: Gatus rejects it too".into());
    };
    let parts: Vec<&str> = text.split(op).collect();
    if parts.len() != 2 {
        return Err(format!("`{}` appears more than once", op.trim()));
    }
    let (l, r) = (
        operand(parts[0].trim(), kind)?,
        operand(parts[1].trim(), kind)?,
    );
    let cert = matches!(&l, Operand::Value { cert: true, .. })
        || matches!(&r, Operand::Value { cert: true, .. });
    // Our DNS check stops at NXDOMAIN, SERVFAIL or an empty answer (down, with the reason): only
    // NOERROR can be asked for; anything else would silently never hold.
    if text.to_ascii_uppercase().contains("[DNS_RCODE]") {
        let other = if matches!(&l, Operand::Value { .. }) {
            &r
        } else {
            &l
        };
        if !matches!(other, Operand::Lit(c) if c.eq_ignore_ascii_case("NOERROR"))
            || op.trim() != "=="
        {
            return Err(
                "only [DNS_RCODE] == NOERROR has an equivalent (our DNS check is down on NXDOMAIN, SERVFAIL or no answer)"
                    .into(),
            );
        }
    }
    let op = op.trim();
    let jq = match op {
        "==" | "!=" => equality(&l, &r, op == "!=")?,
        _ => numeric(&l, &r, op)?,
    };
    // It must compile.
    crate::condition::Condition::new(&jq).map_err(|e| format!("internal: {e}"))?;
    Ok(if cert && kind == Kind::Http {
        Cond::Certificate(jq)
    } else {
        Cond::Jq(jq)
    })
}

fn operand(s: &str, kind: Kind) -> Result<Operand, String> {
    if let Some(inner) = s.strip_prefix("pat(").and_then(|x| x.strip_suffix(')')) {
        return Ok(Operand::Pattern(inner.to_string()));
    }
    if let Some(inner) = s.strip_prefix("any(").and_then(|x| x.strip_suffix(')')) {
        return Ok(Operand::Any(
            inner.split(',').map(|o| o.trim().to_string()).collect(),
        ));
    }
    if let Some(inner) = s.strip_prefix("len(").and_then(|x| x.strip_suffix(')')) {
        let v = placeholder(inner, kind)?
            .ok_or_else(|| format!("len() of {inner:?}: not a placeholder"))?;
        let Operand::Value { jq, ty, .. } = v else {
            return Err(format!("len() of {inner:?}"));
        };
        let jq = match ty {
            Ty::Json => format!(
                "({jq} | if type == \"array\" or type == \"string\" then length else tojson | length end)"
            ),
            _ => format!("({jq} | tostring | length)"),
        };
        return Ok(Operand::Value {
            jq,
            ty: Ty::Num,
            cert: false,
        });
    }
    if let Some(inner) = s.strip_prefix("has(").and_then(|x| x.strip_suffix(')')) {
        let v = placeholder(inner, kind)?;
        let jq = match v {
            Some(Operand::Value {
                jq, ty: Ty::Json, ..
            }) => {
                format!("((try {jq} catch null) != null)")
            }
            Some(Operand::Value { jq, .. }) => format!("(({jq} | tostring) != \"\")"),
            _ => "false".into(),
        };
        return Ok(Operand::Value {
            jq,
            ty: Ty::Bool,
            cert: false,
        });
    }
    Ok(placeholder(s, kind)?.unwrap_or_else(|| Operand::Lit(s.to_string())))
}

/// A placeholder (`None`: not one, a literal).
fn placeholder(s: &str, kind: Kind) -> Result<Option<Operand>, String> {
    let up = s.to_ascii_uppercase();
    let v = |jq: &str, ty: Ty| {
        Ok(Some(Operand::Value {
            jq: jq.to_string(),
            ty,
            cert: false,
        }))
    };
    let unsupported = |p: &str| {
        Err(format!(
            "{p} has no equivalent for a {} check",
            kind.as_str()
        ))
    };
    if up == "[STATUS]" {
        return match kind {
            Kind::Http => v(".status", Ty::Num),
            Kind::Ssh => v(".exit_code", Ty::Num),
            _ => unsupported("[STATUS]"),
        };
    }
    if up == "[RESPONSE_TIME]" {
        return v(".response_time_ms", Ty::Num);
    }
    if up == "[IP]" {
        return match kind {
            Kind::Http | Kind::Tcp | Kind::Icmp => v(".ip", Ty::Text),
            _ => unsupported("[IP]"),
        };
    }
    if up == "[CONNECTED]" {
        return match kind {
            Kind::Tcp => v(".connected", Ty::Bool),
            Kind::Icmp => v(".reachable", Ty::Bool),
            Kind::Http => v("(.status != null)", Ty::Bool),
            Kind::Ssh => v("(.exit_code != null)", Ty::Bool),
            // A DNS answer or a TLS handshake proves the connection; without one the check is
            // down before any condition.
            Kind::Dns | Kind::Tls => v("true", Ty::Bool),
        };
    }
    if up == "[DNS_RCODE]" {
        return match kind {
            Kind::Dns => v(".rcode", Ty::Text),
            _ => unsupported("[DNS_RCODE]"),
        };
    }
    if up == "[CERTIFICATE_EXPIRATION]" {
        return match kind {
            Kind::Tls | Kind::Http => Ok(Some(Operand::Value {
                jq: ".cert.expires_in_days".into(),
                ty: Ty::Num,
                cert: true,
            })),
            _ => unsupported("[CERTIFICATE_EXPIRATION]"),
        };
    }
    if up == "[BODY]" {
        return match kind {
            Kind::Http => v(
                "(.body | if type == \"string\" then . else tojson end)",
                Ty::Text,
            ),
            Kind::Dns => v("(.answers | last // \"\")", Ty::Text),
            Kind::Ssh => v("(.stdout | gsub(\"^\\\\s+|\\\\s+$\"; \"\"))", Ty::Text),
            _ => unsupported("[BODY]"),
        };
    }
    if up.starts_with("[BODY].") || up.starts_with("[BODY][") {
        let path = json_path(&s["[BODY]".len()..])?;
        return match kind {
            Kind::Http => v(&format!(".body{path}"), Ty::Json),
            Kind::Ssh => v(
                &format!("(.stdout | fromjson | .{})", path.trim_start_matches('.')),
                Ty::Json,
            ),
            _ => unsupported("[BODY] with a JSON path"),
        };
    }
    if up.starts_with("[DOMAIN_EXPIRATION]") {
        return Err("[DOMAIN_EXPIRATION] (WHOIS) has no equivalent".into());
    }
    if up.starts_with("[CONTEXT]") {
        return Err("[CONTEXT] belongs to suites, which have no equivalent".into());
    }
    if s.starts_with('[') && s.ends_with(']') && s.len() > 2 && !s[1..].contains('[') {
        return Err(format!("unknown placeholder {s}"));
    }
    Ok(None)
}

/// Gatus' `.a.b[0].c` (after `[BODY]`) as a jq path.
fn json_path(p: &str) -> Result<String, String> {
    let mut out = String::new();
    for seg in p.trim_start_matches('.').split('.') {
        if seg.is_empty() {
            return Err(format!("empty key in the path {p:?}"));
        }
        let (key, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !key.starts_with(|c: char| c.is_ascii_digit())
            {
                let _ = write!(out, ".{key}");
            } else {
                let _ = write!(out, ".{}", serde_json::Value::String(key.into()));
            }
        }
        let mut rest = idx;
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Err(format!("unclosed [ in the path {p:?}"));
            };
            let n: usize = r[..end]
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not an index in the path {p:?}", &r[..end]))?;
            let _ = write!(out, "[{n}]");
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("cannot read {rest:?} in the path {p:?}"));
        }
    }
    Ok(out)
}

fn is_int(s: &str) -> bool {
    let t = s.strip_prefix('-').unwrap_or(s);
    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit())
}

/// The text form of a value operand.
fn as_text(jq: &str, ty: Ty) -> String {
    match ty {
        Ty::Text => jq.to_string(),
        _ => format!("({jq} | tostring)"),
    }
}

fn equality(l: &Operand, r: &Operand, negate: bool) -> Result<String, String> {
    use Operand::*;
    let finish = |e: String| if negate { format!("({e} | not)") } else { e };
    let lit = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let eq = if negate { "!=" } else { "==" };
    Ok(match (l, r) {
        (Pattern(p), Value { jq, ty, .. }) | (Value { jq, ty, .. }, Pattern(p)) => finish(format!(
            "({} | gsub(\"/\"; \"\") | test({}))",
            as_text(jq, *ty),
            lit(&glob_regex(&p.replace('/', "")))
        )),
        (Pattern(p), Lit(s)) | (Lit(s), Pattern(p)) => {
            let m = glob_regex(&p.replace('/', ""));
            let ok = crate::condition::Condition::new(&format!(
                "{} | test({})",
                lit(&s.replace('/', "")),
                lit(&m)
            ))
            .map(|c| c.eval(&serde_json::Value::Null) == crate::condition::Verdict::Holds)
            .unwrap_or(false);
            finish(ok.to_string())
        }
        (Any(opts), Value { jq, ty, .. }) | (Value { jq, ty, .. }, Any(opts)) => {
            let list: Vec<String> = opts.iter().map(|o| lit(o)).collect();
            finish(format!(
                "({} as $v | [{}] | any(.[]; . == $v))",
                as_text(jq, *ty),
                list.join(", ")
            ))
        }
        (Value { jq, ty, .. }, Lit(s)) | (Lit(s), Value { jq, ty, .. }) => match ty {
            Ty::Num if is_int(s) => format!("{jq} {eq} {}", s.trim_start_matches('+')),
            Ty::Bool if s == "true" || s == "false" => format!("{jq} {eq} {s}"),
            Ty::Json
                if !(is_int(s)
                    || ["true", "false", "null"].contains(&s.as_str())
                    || s.parse::<f64>().is_ok()) =>
            {
                format!("{jq} {eq} {}", lit(s))
            }
            _ => format!("{} {eq} {}", as_text(jq, *ty), lit(s)),
        },
        (Value { jq: a, ty: ta, .. }, Value { jq: b, ty: tb, .. }) => {
            format!("{} {eq} {}", as_text(a, *ta), as_text(b, *tb))
        }
        (Lit(a), Lit(b)) => finish((a == b).to_string()),
        _ => return Err("pat() and any() compare with a value, not with each other".into()),
    })
}

fn numeric(l: &Operand, r: &Operand, op: &str) -> Result<String, String> {
    // Certificate expiry against a duration: in days, which reads better than milliseconds.
    let cert_days = |o: &Operand| match o {
        Operand::Lit(s) => go_duration(s)
            .filter(|_| !is_int(s))
            .map(|d| trim_float(d.as_secs_f64() / 86400.0))
            .or_else(|| {
                is_int(s).then(|| trim_float(s.parse::<f64>().unwrap_or(0.0) / 86_400_000.0))
            }),
        _ => None,
    };
    let side = |o: &Operand, other: &Operand| -> Result<String, String> {
        Ok(match o {
            Operand::Value { cert: true, .. } => ".cert.expires_in_days".into(),
            Operand::Value {
                jq, ty: Ty::Num, ..
            } if jq == ".response_time_ms" => {
                // Gatus counts whole milliseconds.
                "(.response_time_ms | floor)".into()
            }
            Operand::Value {
                jq, ty: Ty::Num, ..
            } => jq.clone(),
            Operand::Value {
                jq, ty: Ty::Bool, ..
            } => format!("(if {jq} then 1 else 0 end)"),
            Operand::Value { jq, .. } => format!("({jq} | tonumber? // 0 | trunc)"),
            Operand::Lit(s) => {
                if matches!(other, Operand::Value { cert: true, .. })
                    && let Some(d) = cert_days(o)
                {
                    d
                } else if let Some(d) =
                    go_duration(s).filter(|_| !is_int(s) && s.parse::<f64>().is_err())
                {
                    (d.as_millis()).to_string()
                } else if let Ok(n) = s.parse::<f64>() {
                    format!("{}", n.trunc() as i64)
                } else {
                    "0".into()
                }
            }
            _ => {
                return Err(format!(
                    "pat() and any() only work with == and !=, not {op}"
                ));
            }
        })
    };
    let (a, b) = (side(l, r)?, side(r, l)?);
    // A floor on our side keeps the integer semantics only where it matters.
    let (a, b) = if op == "<" || op == ">=" {
        (
            a.replace("(.response_time_ms | floor)", ".response_time_ms"),
            b,
        )
    } else {
        (a, b)
    };
    Ok(format!("{a} {op} {b}"))
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Go's `filepath.Match` glob as an anchored regex.
fn glob_regex(glob: &str) -> String {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    push_escaped(&mut re, n);
                }
            }
            other => push_escaped(&mut re, other),
        }
    }
    re.push('$');
    re
}

fn push_escaped(re: &mut String, c: char) {
    if ".+()|{}^$[]\\*?".contains(c) {
        re.push('\\');
    }
    re.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::{Condition, Verdict};
    use serde_json::json;

    fn jq(c: &str, kind: Kind) -> String {
        match condition(c, kind).unwrap() {
            Cond::Jq(j) | Cond::Certificate(j) => j,
        }
    }

    fn holds(c: &str, kind: Kind, result: Value) -> bool {
        let j = jq(c, kind);
        let v = Condition::new(&j).unwrap().eval(&result);
        v == Verdict::Holds
    }

    #[test]
    fn readable_jq_for_the_common_conditions() {
        assert_eq!(jq("[STATUS] == 200", Kind::Http), ".status == 200");
        assert_eq!(
            jq("[BODY].status == UP", Kind::Http),
            ".body.status == \"UP\""
        );
        assert_eq!(
            jq("[RESPONSE_TIME] < 300", Kind::Http),
            ".response_time_ms < 300"
        );
        assert_eq!(jq("[CONNECTED] == true", Kind::Tcp), ".connected == true");
        assert_eq!(
            jq("[CERTIFICATE_EXPIRATION] > 48h", Kind::Tls),
            ".cert.expires_in_days > 2"
        );
        assert_eq!(
            jq("[BODY].data[0].id == 1", Kind::Http),
            "(.body.data[0].id | tostring) == \"1\""
        );
    }

    #[test]
    fn verdicts_match_gatus() {
        let r = json!({"status": 200, "response_time_ms": 300.4, "ip": "127.0.0.1",
            "body": {"status": "UP", "name": "john.doe", "data": [{"id": 1}, {"id": 2}], "n": "7", "errors": null}});
        let yes = [
            "[STATUS] == 200",
            "[STATUS] < 300",
            "[STATUS] <= 299 ",
            "[STATUS] == any(200, 429)",
            "[STATUS] == pat(2*)",
            "[RESPONSE_TIME] <= 300",
            "[RESPONSE_TIME] > 299",
            "[IP] == 127.0.0.1",
            "[IP] == pat(127.0.*)",
            "[BODY].name == pat(john*)",
            "[BODY].data[1].id == any(1, 2)",
            "len([BODY].data) < 5",
            "len([BODY].name) == 8",
            "has([BODY].errors) == false",
            "has([BODY].data) == true",
            "[BODY].n > 6",
            "[BODY].status != DOWN",
        ];
        for c in yes {
            assert!(
                holds(c, Kind::Http, r.clone()),
                "{c} -> {}",
                jq(c, Kind::Http)
            );
        }
        let no = [
            "[STATUS] == 201",
            "[STATUS] > 400",
            "[STATUS] == any(201, 429)",
            "[RESPONSE_TIME] < 300",
            "[RESPONSE_TIME] > 300",
            "[BODY].name == pat(bob*)",
            "len([BODY].data) > 2",
            "has([BODY].nope) == true",
            "[BODY].status == DOWN",
            "[BODY].data[0].id == 2",
        ];
        for c in no {
            assert!(
                !holds(c, Kind::Http, r.clone()),
                "{c} -> {}",
                jq(c, Kind::Http)
            );
        }
        assert!(holds("[BODY] == 1", Kind::Http, json!({"body": 1})));
        assert!(holds(
            "[BODY] == pat(*ok*)",
            Kind::Http,
            json!({"body": "all ok here"})
        ));
        assert!(holds(
            "[BODY] == 93.184.215.14",
            Kind::Dns,
            json!({"answers": ["1.2.3.4", "93.184.215.14"]})
        ));
        assert!(holds(
            "[DNS_RCODE] == NOERROR",
            Kind::Dns,
            json!({"rcode": "NOERROR"})
        ));
        assert!(holds("[STATUS] == 0", Kind::Ssh, json!({"exit_code": 0})));
        assert!(holds(
            "[BODY].memory.used > 500",
            Kind::Ssh,
            json!({"stdout": "{\"memory\": {\"used\": 512}}\n"})
        ));
        assert!(holds(
            "[CONNECTED] == true",
            Kind::Icmp,
            json!({"reachable": true})
        ));
        assert!(!holds(
            "[CERTIFICATE_EXPIRATION] > 72h",
            Kind::Tls,
            json!({"cert": {"expires_in_days": 2.5}})
        ));
    }

    #[test]
    fn what_cannot_be_converted_says_why() {
        assert!(
            condition("[DOMAIN_EXPIRATION] > 720h", Kind::Http)
                .unwrap_err()
                .contains("WHOIS")
        );
        assert!(
            condition("[STATUS] == 200", Kind::Tcp)
                .unwrap_err()
                .contains("tcp")
        );
        assert!(
            condition("[STATUS]", Kind::Http)
                .unwrap_err()
                .contains("comparison")
        );
        assert!(
            condition("[DNS_RCODE] == NXDOMAIN", Kind::Dns)
                .unwrap_err()
                .contains("NOERROR")
        );
        assert!(
            condition("[FOO] == 1", Kind::Http)
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(matches!(
            condition("[CERTIFICATE_EXPIRATION] > 48h", Kind::Http),
            Ok(Cond::Certificate(_))
        ));
    }

    #[test]
    fn go_durations_and_globs() {
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(dur(Duration::from_secs(90)), "90s");
        assert_eq!(dur(Duration::from_secs(300)), "5m");
        assert_eq!(glob_regex("2*"), "^2.*$");
        assert_eq!(glob_regex("a.b?[^x]"), "^a\\.b.[^x]$");
    }

    #[test]
    fn env_references_become_env_secrets_and_mixed_text_is_reported() {
        let c = convert(
            "alerting:\n  slack:\n    webhook-url: \"${SLACK_URL}\"\n  discord:\n    webhook-url: x\n\
             endpoints:\n  - name: api\n    url: https://x.example/h\n    headers:\n      Authorization: Bearer ${API_TOKEN}\n      X-Key: pre-${KEY}\n    conditions: [\"[STATUS] == 200\"]\n    alerts:\n      - type: slack\n      - type: discord\n",
        )
        .unwrap();
        assert!(c.toml.contains("webhook = \"env:SLACK_URL\""), "{}", c.toml);
        assert!(c.toml.contains("bearer = \"env:API_TOKEN\""), "{}", c.toml);
        let skipped: Vec<String> = c
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::NotConverted)
            .map(|n| n.to_string())
            .collect();
        assert!(skipped.iter().any(|n| n.contains("X-Key")), "{skipped:?}");
        assert!(
            skipped.iter().any(|n| n.contains("alerting.discord")),
            "{skipped:?}"
        );
        assert!(
            skipped.iter().any(|n| n.contains("alerts[1]")),
            "{skipped:?}"
        );
        // Listed in the output too.
        assert!(
            c.toml.contains("#   not converted: alerting.discord"),
            "{}",
            c.toml
        );
        crate::config::parse("out.toml", &c.toml).unwrap();
    }

    #[test]
    fn not_gatus_is_an_error() {
        assert!(convert("a: [").unwrap_err().contains("YAML"));
        assert!(
            convert("web:\n  port: 8080\n")
                .unwrap_err()
                .contains("endpoints")
        );
    }
}
