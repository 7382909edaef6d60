//! Inventory-driven monitors: a `[[template]]` of `monitor.toml` with a selector
//! (`env=prod,tag=web`) becomes one monitor per inventory server it matches.
//!
//! ```toml
//! [[template]]
//! selector = "env=prod"
//! name = "ssh {hostname}"
//! kind = "tcp"
//! target = "{ip}:22"
//! ```
//!
//! The inventory itself (the servers of `opskit serve`) is behind the [`Inventory`] trait; this
//! module parses selectors (the one parser, also used by `opskit ssh run --inventory`),
//! substitutes placeholders and [`expand`]s templates into monitors, deterministically: the
//! templates in file order, each over the servers sorted by hostname (then id).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::config::{Check, Config, Monitor, Template};
use crate::{Error, Result};

/// The keys a selector may use: the list filters of `GET /api/v1/servers`.
pub const SELECTOR_KEYS: &[&str] = &["env", "status", "os_type", "tag"];

/// The lifecycle statuses of an inventory server (those of `opskit serve`).
pub const STATUSES: &[&str] = &[
    "active",
    "provisioning",
    "maintenance",
    "offline",
    "decommissioned",
];

/// The placeholders a template may use, replaced by the server's value.
pub const PLACEHOLDERS: &[&str] = &["hostname", "ip", "env", "id"];

/// One server of the inventory, as monitors and ssh need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryServer {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub env: String,
    pub tags: Vec<String>,
    pub status: String,
    pub os_type: Option<String>,
}

/// Where the servers come from (the database of `opskit serve`, in `opskit-server`).
pub trait Inventory: Send + Sync {
    /// Every server in the inventory (all pages).
    fn servers(&self) -> BoxFuture<'_, Result<Vec<InventoryServer>>>;
}

/// A parsed selector: `env=prod,tag=web` (comma = and; keys env, status, os_type, tag). The
/// empty selector does not exist: a template or `--inventory` always says what it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pairs: Vec<(String, String)>,
}

/// Why a selector was refused (the message says which part).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector `{selector}`: {why}")]
pub struct SelectorError {
    pub selector: String,
    pub why: String,
}

impl SelectorError {
    /// How to write one, for hints.
    pub fn hint() -> String {
        format!(
            "write KEY=VALUE[,KEY=VALUE…] with keys {} (comma = and)",
            SELECTOR_KEYS.join(", ")
        )
    }
}

impl Selector {
    /// Parses `env=prod,tag=web`.
    pub fn parse(selector: &str) -> std::result::Result<Selector, SelectorError> {
        let bad = |why: String| SelectorError {
            selector: selector.to_owned(),
            why,
        };
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in selector.split(',') {
            let part = part.trim();
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad(format!("`{part}` has no `=`")));
            };
            let (k, v) = (k.trim(), v.trim());
            if !SELECTOR_KEYS.contains(&k) {
                return Err(bad(format!(
                    "unknown key `{k}` (use {})",
                    SELECTOR_KEYS.join(", ")
                )));
            }
            if v.is_empty() {
                return Err(bad(format!("`{k}` has no value")));
            }
            if k == "status" && !STATUSES.contains(&v) {
                return Err(bad(format!(
                    "status `{v}` is not one of {}",
                    STATUSES.join(", ")
                )));
            }
            if pairs.iter().any(|(pk, _)| pk == k) {
                return Err(bad(format!("`{k}` is given twice")));
            }
            pairs.push((k.to_owned(), v.to_owned()));
        }
        Ok(Selector { pairs })
    }

    /// Every server (what a program reads when it filters itself; not written as text).
    pub fn any() -> Selector {
        Selector { pairs: Vec::new() }
    }

    /// The `KEY=VALUE` pairs, in the order written (the query of `GET /api/v1/servers`).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The value given for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `server` is selected: every pair holds (the same test as the API's list
    /// filters: equal env, status and os_type, and the tag among the server's tags).
    pub fn matches(&self, server: &InventoryServer) -> bool {
        self.pairs.iter().all(|(k, v)| match k.as_str() {
            "env" => server.env == *v,
            "status" => server.status == *v,
            "os_type" => server.os_type.as_deref() == Some(v.as_str()),
            "tag" => server.tags.iter().any(|t| t == v),
            _ => false,
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// The placeholders (`{word}`) in `text`, known or not, in order. Braces around anything other
/// than a word (`{"a": 1}`, `{a: .b}`) are left alone.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let word = &after[..close];
                if is_word(word) {
                    out.push(word);
                    rest = &after[close + 1..];
                } else {
                    rest = after;
                }
            }
            None => break,
        }
    }
    out
}

fn is_word(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` with each placeholder replaced by `server`'s value. An IPv6 `{ip}` is written in
/// brackets where a port or a URL needs them (before `:`, or after `://` or `@`), so
/// `{ip}:22` and `http://{ip}/` work for both families. Unknown words are left as written
/// (templates are checked at load, so none reach here).
pub fn substitute(text: &str, server: &InventoryServer) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let word = &after[..close];
        let value = match word {
            "hostname" => Some(server.hostname.clone()),
            "env" => Some(server.env.clone()),
            "id" => Some(server.id.clone()),
            "ip" => {
                let before = format!("{out}{}", &rest[..open]);
                let next = after[close + 1..].chars().next();
                let v6 = server.ip.contains(':') && !server.ip.starts_with('[');
                let needs = next == Some(':') || before.ends_with("://") || before.ends_with('@');
                Some(if v6 && needs {
                    format!("[{}]", server.ip)
                } else {
                    server.ip.clone()
                })
            }
            _ => None,
        };
        match value {
            Some(v) => {
                out.push_str(&rest[..open]);
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A server that stands in for every server when a template is checked at load.
pub(crate) fn sample_server() -> InventoryServer {
    InventoryServer {
        id: "00000000-0000-7000-8000-000000000000".into(),
        hostname: "host.example".into(),
        ip: "192.0.2.1".into(),
        env: "prod".into(),
        tags: Vec::new(),
        status: "active".into(),
        os_type: None,
    }
}

/// What [`expand`] made: the monitors, and what it could not make (said, not dropped in
/// silence).
#[derive(Debug, Clone, Default)]
pub struct Expansion {
    pub monitors: Vec<Monitor>,
    /// One sentence per refused monitor: `FILE:LINE: template[NAME]: …`.
    pub problems: Vec<String>,
}

/// One monitor per (template, matching server): templates in file order, servers by hostname
/// then id. A monitor whose name (or heartbeat token) another one already has — from the file
/// (`taken`) or from an earlier template or server — is left out and reported; so is a server
/// whose values make an invalid check (e.g. an `http` URL its hostname cannot form).
pub fn expand(
    templates: &[Template],
    servers: &[InventoryServer],
    taken: &BTreeSet<String>,
) -> Expansion {
    let mut sorted: Vec<&InventoryServer> = servers.iter().collect();
    sorted.sort_by(|a, b| a.hostname.cmp(&b.hostname).then_with(|| a.id.cmp(&b.id)));
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut tokens: BTreeSet<String> = BTreeSet::new();
    let mut out = Expansion::default();
    for t in templates {
        for s in sorted.iter().filter(|s| t.selector.matches(s)) {
            let m = match t.instantiate(s) {
                Ok(m) => m,
                Err(e) => {
                    out.problems.push(e.to_string());
                    continue;
                }
            };
            if taken.contains(&m.name) {
                out.problems.push(t.problem(
                    s,
                    format!("the name {:?} is taken by a monitor of the file", m.name),
                ));
                continue;
            }
            if let Some(first) = names.get(&m.name) {
                out.problems.push(t.problem(
                    s,
                    format!(
                        "the name {:?} is already made by {first}; put {{hostname}} or {{id}} in the name",
                        m.name
                    ),
                ));
                continue;
            }
            if let Check::Heartbeat { token, .. } = &m.check
                && !tokens.insert(token.clone())
            {
                out.problems.push(t.problem(
                    s,
                    format!(
                        "the heartbeat token of {:?} is used by another monitor",
                        m.name
                    ),
                ));
                continue;
            }
            names.insert(
                m.name.clone(),
                format!("template[{}] for {}", t.name, s.hostname),
            );
            out.monitors.push(m);
        }
    }
    out
}

/// The [`MonitorSource`](crate::service::MonitorSource) of inventory-driven monitors: the
/// `[[template]]`s of the monitor file, expanded over the servers of an [`Inventory`] each time
/// the service reads its sources. Problems (a clash, a server that makes an invalid check) are
/// logged when they change and kept for [`problems`](InventorySource::problems).
pub struct InventorySource<I> {
    inventory: I,
    problems: Mutex<Arc<Vec<String>>>,
}

impl<I: Inventory> InventorySource<I> {
    pub fn new(inventory: I) -> Self {
        Self {
            inventory,
            problems: Mutex::new(Arc::default()),
        }
    }

    /// The problems of the last expansion.
    pub fn problems(&self) -> Arc<Vec<String>> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The monitors the templates of `base` make over the inventory now.
    pub async fn expand_now(&self, base: &Config) -> Result<Vec<Monitor>> {
        if base.templates.is_empty() {
            self.note(Vec::new());
            return Ok(Vec::new());
        }
        let servers = self.inventory.servers().await?;
        let taken: BTreeSet<String> = base.monitors.iter().map(|m| m.name.clone()).collect();
        let mut e = expand(&base.templates, &servers, &taken);
        // a file monitor's heartbeat token is not reused by a template
        let file_tokens: BTreeSet<&str> = base
            .monitors
            .iter()
            .filter_map(|m| match &m.check {
                Check::Heartbeat { token, .. } => Some(token.as_str()),
                _ => None,
            })
            .collect();
        let mut problems = e.problems;
        e.monitors.retain(|m| match &m.check {
            Check::Heartbeat { token, .. } if file_tokens.contains(token.as_str()) => {
                problems.push(format!(
                    "monitor {:?}: its heartbeat token is used by a monitor of the file",
                    m.name
                ));
                false
            }
            _ => true,
        });
        self.note(problems);
        Ok(e.monitors)
    }

    fn note(&self, problems: Vec<String>) {
        let Ok(mut last) = self.problems.lock() else {
            return;
        };
        if **last != problems {
            for p in &problems {
                tracing::warn!(problem = %p, "inventory monitor left out");
            }
            *last = Arc::new(problems);
        }
    }
}

impl<I: Inventory + 'static> crate::service::MonitorSource for InventorySource<I> {
    fn origin(&self) -> crate::service::Origin {
        crate::service::Origin::Inventory
    }

    fn monitors<'a>(&'a self, base: &'a Config) -> BoxFuture<'a, Result<Vec<Monitor>>> {
        Box::pin(self.expand_now(base))
    }
}

impl<T: Inventory + ?Sized> Inventory for Arc<T> {
    fn servers(&self) -> BoxFuture<'_, Result<Vec<InventoryServer>>> {
        (**self).servers()
    }
}

/// An inventory that is a fixed list (tests, or servers read once).
impl Inventory for Vec<InventoryServer> {
    fn servers(&self) -> BoxFuture<'_, Result<Vec<InventoryServer>>> {
        Box::pin(async move { Ok(self.clone()) })
    }
}

impl From<SelectorError> for Error {
    fn from(e: SelectorError) -> Self {
        Error::Config(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn server(hostname: &str, ip: &str, env: &str, tags: &[&str]) -> InventoryServer {
        InventoryServer {
            id: format!("id-{hostname}"),
            hostname: hostname.into(),
            ip: ip.into(),
            env: env.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            status: "active".into(),
            os_type: Some("linux".into()),
        }
    }

    fn templates(text: &str) -> Vec<Template> {
        parse("m.toml", text).unwrap().templates
    }

    fn load_error(text: &str) -> String {
        parse("m.toml", text).unwrap_err().to_string()
    }

    const SSH: &str = r#"
[destinations.ops]
type = "slack"
webhook = "env:SLACK_URL"

[[monitor]]
name = "api"
kind = "tcp"
target = "127.0.0.1:80"

[[template]]
selector = "env=prod,tag=web"
name = "ssh {hostname}"
group = "prod-ssh"
kind = "tcp"
target = "{ip}:22"
alerts = ["ops"]
"#;

    #[test]
    fn selectors_parse_and_match_like_the_api_filters() {
        let s = Selector::parse(" env=prod , tag=web").unwrap();
        assert_eq!(s.to_string(), "env=prod,tag=web");
        assert_eq!(s.get("tag"), Some("web"));
        assert!(s.matches(&server("a", "10.0.0.1", "prod", &["db", "web"])));
        assert!(!s.matches(&server("a", "10.0.0.1", "prod", &["db"])));
        assert!(!s.matches(&server("a", "10.0.0.1", "dev", &["web"])));
        let s = Selector::parse("status=active,os_type=linux").unwrap();
        assert!(s.matches(&server("a", "10.0.0.1", "prod", &[])));
        let mut off = server("a", "10.0.0.1", "prod", &[]);
        off.status = "offline".into();
        off.os_type = None;
        assert!(!s.matches(&off));
        for (bad, says) in [
            ("env", "`env` has no `=`"),
            ("colour=red", "unknown key `colour`"),
            ("env=", "`env` has no value"),
            ("env=a,env=b", "`env` is given twice"),
            ("", "`` has no `=`"),
            ("status=gone", "status `gone` is not one of"),
        ] {
            let e = Selector::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
    }

    #[test]
    fn placeholders_are_words_in_braces() {
        assert_eq!(placeholders("ssh {hostname} {ip}:22"), ["hostname", "ip"]);
        // jq objects and JSON bodies are not placeholders
        assert!(placeholders(r#"{"a": 1} | {a: .b}"#).is_empty());
        let s = server("web1", "2001:db8::1", "prod", &[]);
        assert_eq!(substitute("{ip}:22", &s), "[2001:db8::1]:22");
        assert_eq!(
            substitute("http://{ip}/x?h={hostname}", &s),
            "http://[2001:db8::1]/x?h=web1"
        );
        assert_eq!(substitute("ping {ip}", &s), "ping 2001:db8::1");
        let s4 = server("web1", "10.0.0.1", "prod", &[]);
        assert_eq!(
            substitute("{ip}:22 {env} {id} {other}", &s4),
            "10.0.0.1:22 prod id-web1 {other}"
        );
    }

    #[test]
    fn template_is_checked_at_load_naming_file_line_and_key() {
        let t = templates(SSH);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].line, 11);
        assert_eq!(t[0].name, "ssh {hostname}");
        // unknown placeholder
        let e = load_error(&SSH.replace("{ip}:22", "{address}:22"));
        assert!(
            e.starts_with(
                "m.toml:11: template[ssh {hostname}].target: unknown placeholder {address}"
            ),
            "{e}"
        );
        // bad selector
        let e = load_error(&SSH.replace("env=prod,tag=web", "env=prod,colour=red"));
        assert!(e.starts_with("m.toml:11: template[ssh {hostname}].selector: bad selector `env=prod,colour=red`: unknown key `colour`"), "{e}");
        // no selector
        let e = load_error(&SSH.replace("selector = \"env=prod,tag=web\"\n", ""));
        assert!(
            e.starts_with("m.toml:11: template[ssh {hostname}].selector: is missing"),
            "{e}"
        );
        // a name every server would share
        let e = load_error(&SSH.replace("ssh {hostname}", "ssh {env}"));
        assert!(
            e.starts_with("m.toml:11: template[ssh {env}].name: needs {hostname} or {id}"),
            "{e}"
        );
        // what the server cannot fix: kind, keys, destinations, conditions
        let e = load_error(&SSH.replace(
            "kind = \"tcp\"\ntarget = \"{ip}",
            "kind = \"tcpp\"\ntarget = \"{ip}",
        ));
        assert!(
            e.starts_with("m.toml:11: template[ssh {hostname}].kind: unknown kind"),
            "{e}"
        );
        let e = load_error(&SSH.replace("alerts = [\"ops\"]", "alerts = [\"pager\"]"));
        assert!(
            e.starts_with(
                "m.toml:11: template[ssh {hostname}].alerts: no destination named \"pager\""
            ),
            "{e}"
        );
        let e = load_error(&SSH.replace("alerts = [\"ops\"]", "frobnicate = 1"));
        assert!(
            e.starts_with("m.toml:11: template[ssh {hostname}]: unknown field `frobnicate`"),
            "{e}"
        );
        let e = load_error(&SSH.replace("target = \"{ip}:22\"", "target = \"{ip}\""));
        assert!(
            e.starts_with("m.toml:11: template[ssh {hostname}].target:"),
            "{e}"
        );
        assert!(e.contains("port"), "{e}");
        // two templates, one name
        let twice = format!(
            "{SSH}\n[[template]]\nselector = \"env=dev\"\nname = \"ssh {{hostname}}\"\nkind = \"tcp\"\ntarget = \"{{ip}}:2222\"\n"
        );
        let e = load_error(&twice);
        assert!(
            e.starts_with(
                "m.toml:19: template[ssh {hostname}].name: the template of line 11 has this name"
            ),
            "{e}"
        );
        // a maintenance window may name a template's group, not an unknown one
        let window = |group: &str| {
            format!(
                "{SSH}\n[[maintenance]]\nmonitors = [\"{group}\"]\nstart = \"02:00\"\nduration = \"1h\"\n"
            )
        };
        parse("m.toml", &window("prod-ssh")).unwrap();
        let e = load_error(&window("prod-sssh"));
        assert!(
            e.contains("\"prod-sssh\" is neither a monitor nor a group"),
            "{e}"
        );
    }

    #[test]
    fn expansion_makes_one_monitor_per_matching_server_in_hostname_order() {
        let t = templates(SSH);
        let servers = vec![
            server("web2", "10.0.0.2", "prod", &["web"]),
            server("dev1", "10.0.0.9", "dev", &["web"]),
            server("web1", "10.0.0.1", "prod", &["web", "linux"]),
            server("db1", "10.0.0.5", "prod", &["db"]),
        ];
        let e = expand(&t, &servers, &BTreeSet::new());
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        let got: Vec<(String, String)> = e
            .monitors
            .iter()
            .map(|m| (m.name.clone(), m.check.target()))
            .collect();
        assert_eq!(
            got,
            [
                ("ssh web1".to_owned(), "10.0.0.1:22".to_owned()),
                ("ssh web2".to_owned(), "10.0.0.2:22".to_owned())
            ]
        );
        let m = &e.monitors[0];
        assert_eq!(m.group.as_deref(), Some("prod-ssh"));
        assert_eq!(m.alerts[0].destination, "ops");
        assert_eq!(m.line, 11);
        // the same servers in another order: the same monitors
        let mut rev = servers.clone();
        rev.reverse();
        let again = expand(&t, &rev, &BTreeSet::new());
        let names = |e: &Expansion| {
            e.monitors
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&e), names(&again));
    }

    #[test]
    fn a_clash_is_reported_not_dropped_in_silence() {
        let text = r#"
[[monitor]]
name = "http web1"
kind = "tcp"
target = "127.0.0.1:80"

[[template]]
selector = "tag=web"
name = "http {hostname}"
kind = "http"
target = "https://{hostname}/health"

[[template]]
selector = "env=prod"
name = "{hostname}"
kind = "tcp"
target = "{ip}:443"
"#;
        let cfg = parse("m.toml", text).unwrap();
        let t = cfg.templates.clone();
        let taken = cfg.monitors.iter().map(|m| m.name.clone()).collect();
        let servers = vec![
            server("web1", "10.0.0.1", "prod", &["web"]),
            server("web2", "10.0.0.2", "prod", &["web"]),
            // its hostname is the name the first template makes for web2
            server("http web2", "10.0.0.3", "prod", &[]),
        ];
        let e = expand(&t, &servers, &taken);
        let names: Vec<&str> = e.monitors.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["http web2", "web1", "web2"]);
        assert_eq!(e.problems.len(), 2, "{:?}", e.problems);
        assert!(
            e.problems[0].starts_with("m.toml:7: template[http {hostname}] for web1: the name \"http web1\" is taken by a monitor of the file"),
            "{:?}",
            e.problems
        );
        assert!(
            e.problems[1].starts_with("m.toml:13: template[{hostname}] for http web2: the name \"http web2\" is already made by template[http {hostname}] for web2"),
            "{:?}",
            e.problems
        );
    }

    #[test]
    fn a_server_whose_values_make_a_bad_check_is_reported() {
        let text = r#"
[[template]]
selector = "env=prod"
name = "health {hostname}"
kind = "http"
target = "https://{hostname}/health"
"#;
        let t = templates(text);
        let mut bad = server("web1", "10.0.0.1", "prod", &[]);
        bad.hostname = "web 1".into();
        let e = expand(
            &t,
            &[bad, server("web2", "10.0.0.2", "prod", &[])],
            &BTreeSet::new(),
        );
        assert_eq!(e.monitors.len(), 1);
        assert_eq!(e.monitors[0].check.target(), "https://web2/health");
        assert_eq!(e.problems.len(), 1);
        assert!(
            e.problems[0].starts_with("m.toml:2: template[health {hostname}].target:"),
            "{:?}",
            e.problems
        );
        assert!(
            e.problems[0].ends_with("(server web 1)"),
            "{:?}",
            e.problems
        );
    }

    #[tokio::test]
    async fn the_source_follows_the_inventory_and_leaves_the_file_alone() {
        use crate::service::{MonitorSource, Origin};
        let cfg = parse("m.toml", SSH).unwrap();
        let servers = Arc::new(Mutex::new(vec![server(
            "web1",
            "10.0.0.1",
            "prod",
            &["web"],
        )]));
        struct Shared(Arc<Mutex<Vec<InventoryServer>>>);
        impl Inventory for Shared {
            fn servers(&self) -> BoxFuture<'_, Result<Vec<InventoryServer>>> {
                let now = self.0.lock().unwrap().clone();
                Box::pin(async move { Ok(now) })
            }
        }
        let source = InventorySource::new(Shared(servers.clone()));
        assert_eq!(source.origin(), Origin::Inventory);
        let names = |ms: Vec<Monitor>| ms.into_iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(source.monitors(&cfg).await.unwrap()), ["ssh web1"]);
        // a server added, one moved out of prod
        {
            let mut s = servers.lock().unwrap();
            s.push(server("web2", "10.0.0.2", "prod", &["web"]));
            s[0].env = "dev".into();
        }
        assert_eq!(names(source.monitors(&cfg).await.unwrap()), ["ssh web2"]);
        assert!(source.problems().is_empty());
        // a server named like a monitor of the file makes no monitor, and says so
        servers.lock().unwrap()[0] = server("web3", "10.0.0.3", "prod", &["web"]);
        let clash = parse(
            "m.toml",
            &SSH.replace("name = \"api\"", "name = \"ssh web3\""),
        )
        .unwrap();
        assert_eq!(names(source.monitors(&clash).await.unwrap()), ["ssh web2"]);
        assert_eq!(source.problems().len(), 1, "{:?}", source.problems());
        // no template: the inventory is not even read
        let none = parse("m.toml", "").unwrap();
        assert!(source.monitors(&none).await.unwrap().is_empty());
    }
}
