//! Monitors created through the API of `opskit serve` (`/api/v1/monitors`, issue 14).
//!
//! Each is stored in the monitor's database (`monitor_definitions`) as a JSON object of the same
//! shape as a `[[monitor]]` table of `monitor.toml`, with a revision number behind its ETag. It
//! is checked by the file's own parser ([`check`]: the object becomes a `[[monitor]]` table
//! parsed next to the file's destinations), so the rules and the messages are the file's; a
//! message names the field. [`ApiMonitors`] hands the stored monitors to the running
//! [`crate::service::Service`].
//!
//! Three rules apply to API monitors only: a secret (`bearer`, `basic_password`, `password`, a
//! header value) is the value itself, never `env:`, `file:` or `cmd:` (those are read on the
//! server, which an API caller must not make it do); there are no `ssh` monitors (they run a
//! command with the server's own SSH keys and agent, on a host the caller would choose); and a
//! name must not look like a UUID (`/api/v1/monitors/{id}` takes either). Secrets are shown redacted ([`redacted`]); a client
//! that sends a redacted value back keeps the stored one ([`keep_secrets`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use sqlx::Row as _;
use uuid::Uuid;

use crate::config::{Config, Monitor};
use crate::service::{MonitorSource, Origin};
use crate::store::Db;
use crate::{Error, Result};

/// What a redacted secret reads as.
pub use opskit_http::REDACTED;

/// Longest name of an API monitor, in characters.
pub const MAX_NAME: usize = 128;

/// Fields holding a secret as a string.
const SECRET_FIELDS: [&str; 3] = ["bearer", "basic_password", "password"];

/// A monitor stored through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: Uuid,
    /// The monitor's name (also `definition["name"]`), unique.
    pub name: String,
    /// The monitor as a `[[monitor]]` table in JSON, secrets in clear.
    pub definition: Map<String, Value>,
    /// Revision, from 1; every change adds one.
    pub version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Stored {
    /// The strong entity tag of this revision.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id.simple(), self.version)
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    NotFound,
    /// The stored revision is not the one expected: nothing was written.
    VersionMismatch,
    /// Another stored monitor has this name: nothing was written.
    NameTaken,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Stored> {
    let id: String = r.get(0);
    let text: String = r.get(2);
    let definition = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(Error::Other(format!(
                "stored monitor {id} is not a JSON object"
            )));
        }
    };
    Ok(Stored {
        id: Uuid::parse_str(&id)
            .map_err(|e| Error::Other(format!("stored monitor id {id:?}: {e}")))?,
        name: r.get(1),
        definition,
        version: r.get(3),
        created_ms: r.get(4),
        updated_ms: r.get(5),
    })
}

const COLUMNS: &str = "id, name, definition, version, created_ms, updated_ms";

fn definition_text(m: &Stored) -> Result<String> {
    serde_json::to_string(&m.definition)
        .map_err(|e| Error::Other(format!("serialising monitor {:?}: {e}", m.name)))
}

/// Stores a new monitor: [`Written::Done`] or [`Written::NameTaken`].
pub async fn create(db: &Db, m: &Stored) -> Result<Written> {
    let done = sqlx::query(
        "INSERT INTO monitor_definitions (id, name, definition, version, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
    )
    .bind(m.id.to_string())
    .bind(&m.name)
    .bind(definition_text(m)?)
    .bind(m.version)
    .bind(m.created_ms)
    .bind(m.updated_ms)
    .execute(&db.pool)
    .await?;
    Ok(if done.rows_affected() == 1 {
        Written::Done
    } else {
        Written::NameTaken
    })
}

/// The monitor with this id (a UUID) or, failing that, this name.
pub async fn get(db: &Db, id_or_name: &str) -> Result<Option<Stored>> {
    let row = match Uuid::parse_str(id_or_name) {
        Ok(id) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM monitor_definitions WHERE id = $1"
            )))
            .bind(id.to_string())
            .fetch_optional(&db.pool)
            .await?
        }
        Err(_) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM monitor_definitions WHERE name = $1"
            )))
            .bind(id_or_name)
            .fetch_optional(&db.pool)
            .await?
        }
    };
    row.as_ref().map(from_row).transpose()
}

/// Every stored monitor, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Stored>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM monitor_definitions ORDER BY created_ms, id"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Replaces the definition of `m.id` with `m`'s (name, definition, version, updated time) if
/// its stored revision is still `expected_version`.
pub async fn update(db: &Db, m: &Stored, expected_version: i64) -> Result<Written> {
    let taken = sqlx::query("SELECT id FROM monitor_definitions WHERE name = $1 AND id <> $2")
        .bind(&m.name)
        .bind(m.id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    if taken.is_some() {
        return Ok(Written::NameTaken);
    }
    let done = sqlx::query(
        "UPDATE monitor_definitions SET name = $1, definition = $2, version = $3, updated_ms = $4 \
         WHERE id = $5 AND version = $6",
    )
    .bind(&m.name)
    .bind(definition_text(m)?)
    .bind(m.version)
    .bind(m.updated_ms)
    .bind(m.id.to_string())
    .bind(expected_version)
    .execute(&db.pool)
    .await;
    match done {
        Ok(d) if d.rows_affected() == 1 => Ok(Written::Done),
        Ok(_) => Ok(missing_or_changed(db, m.id).await?),
        // the name was taken between the look-up and the update
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Written::NameTaken),
        Err(e) => Err(e.into()),
    }
}

async fn missing_or_changed(db: &Db, id: Uuid) -> Result<Written> {
    let exists = sqlx::query("SELECT version FROM monitor_definitions WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    Ok(if exists.is_some() {
        Written::VersionMismatch
    } else {
        Written::NotFound
    })
}

/// Deletes `id`; with `expected_version`, only while it is still that revision.
pub async fn delete(db: &Db, id: Uuid, expected_version: Option<i64>) -> Result<Written> {
    let done =
        sqlx::query("DELETE FROM monitor_definitions WHERE id = $1 AND ($2 < 0 OR version = $2)")
            .bind(id.to_string())
            .bind(expected_version.unwrap_or(-1))
            .execute(&db.pool)
            .await?;
    if done.rows_affected() == 1 {
        Ok(Written::Done)
    } else {
        missing_or_changed(db, id).await
    }
}

/// The current state of a monitor, as the API's list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentState {
    /// `up`, `down` or `unknown`: the last result.
    pub status: String,
    pub last_check_ms: i64,
    pub last_reason: Option<String>,
    pub last_response_time_ms: Option<f64>,
    /// The first of the kept results since the last one of another status.
    pub since_ms: Option<i64>,
}

/// The current state of every monitor the database knows, by name (one query).
pub async fn states(db: &Db) -> Result<std::collections::HashMap<String, CurrentState>> {
    let rows = sqlx::query(
        "SELECT s.monitor, s.status, s.last_check_ms, s.last_reason, s.last_response_time_ms, \
         (SELECT MIN(r.at_ms) FROM results r WHERE r.monitor = s.monitor AND r.at_ms > \
           COALESCE((SELECT MAX(o.at_ms) FROM results o \
                     WHERE o.monitor = s.monitor AND o.status <> s.status), -1)) \
         FROM monitor_state s",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                CurrentState {
                    status: r.get(1),
                    last_check_ms: r.get(2),
                    last_reason: r.get(3),
                    last_response_time_ms: r.get(4),
                    since_ms: r.get(5),
                },
            )
        })
        .collect())
}

// ---------------------------------------------------------------- checking

/// One step of the path to a bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Key(String),
    Index(usize),
}

/// Why a definition was refused, and where: `field` is empty when the whole body is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: Vec<Part>,
    pub message: String,
}

impl Invalid {
    fn at(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: vec![Part::Key(field.to_string())],
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut path = String::new();
        for p in &self.field {
            match p {
                Part::Key(k) if path.is_empty() => path.push_str(k),
                Part::Key(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Part::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

/// Control characters and the bidirectional marks that make text display in another order
/// than it is stored.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// The rules of API monitors that the file does not have (see the module docs).
fn api_rules(obj: &Map<String, Value>) -> std::result::Result<(), Invalid> {
    if let Some(Value::String(name)) = obj.get("name") {
        let name = name.trim();
        if name.chars().count() > MAX_NAME {
            return Err(Invalid::at(
                "name",
                format!("is longer than {MAX_NAME} characters"),
            ));
        }
        if name.chars().any(is_unsafe_char) {
            return Err(Invalid::at(
                "name",
                "contains a control or bidirectional-override character",
            ));
        }
        if Uuid::parse_str(name).is_ok() {
            return Err(Invalid::at(
                "name",
                "must not look like a UUID (it would be ambiguous in /api/v1/monitors/{id})",
            ));
        }
    }
    let server_side = |s: &str| {
        ["env:", "file:", "cmd:", "vault:"]
            .into_iter()
            .find(|p| s.starts_with(p))
    };
    let refuse = |field: Vec<Part>, prefix: &str| Invalid {
        field,
        message: format!(
            "{prefix} secrets are read on the server and are for monitor.toml only; send the value itself"
        ),
    };
    for k in SECRET_FIELDS {
        if let Some(Value::String(s)) = obj.get(k)
            && let Some(p) = server_side(s)
        {
            return Err(refuse(vec![Part::Key(k.into())], p));
        }
    }
    if let Some(Value::Object(h)) = obj.get("headers") {
        for (name, v) in h {
            if let Value::String(s) = v
                && let Some(p) = server_side(s)
            {
                return Err(refuse(
                    vec![Part::Key("headers".into()), Part::Key(name.clone())],
                    p,
                ));
            }
        }
    }
    if obj.get("kind").and_then(Value::as_str) == Some("ssh") {
        return Err(Invalid::at(
            "kind",
            "an ssh monitor runs a command with this server's own SSH keys and agent: define it in monitor.toml, not through the API",
        ));
    }
    Ok(())
}

/// A TOML basic string (also a quoted key): `"…"` with `\\`, `\"` and control characters
/// escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON as inline TOML; `null` values of an object are left out (absent), `null` in a list is
/// refused.
fn inline(v: &Value, at: &mut Vec<Part>) -> std::result::Result<String, Invalid> {
    let bad = |at: &Vec<Part>, message: &str| Invalid {
        field: at.clone(),
        message: message.to_string(),
    };
    Ok(match v {
        Value::Null => return Err(bad(at, "null is not a value here")),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                format!("{f:?}")
            } else {
                return Err(bad(at, "the number is out of range"));
            }
        }
        Value::String(s) => quoted(s),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                at.push(Part::Index(i));
                parts.push(inline(item, at)?);
                at.pop();
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Object(m) => {
            let mut parts = Vec::with_capacity(m.len());
            for (k, item) in m {
                if item.is_null() {
                    continue;
                }
                at.push(Part::Key(k.clone()));
                parts.push(format!("{} = {}", quoted(k), inline(item, at)?));
                at.pop();
            }
            format!("{{ {} }}", parts.join(", "))
        }
    })
}

/// The path named by the parser's key (`target`, `conditions[0]`, `alerts.remind_every`).
fn parse_key(key: &str) -> Vec<Part> {
    let mut out = Vec::new();
    for seg in key.split('.') {
        let mut rest = seg;
        if let Some(open) = rest.find('[') {
            out.push(Part::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                match rest[1..close].parse::<usize>() {
                    Ok(i) => out.push(Part::Index(i)),
                    Err(_) => out.push(Part::Key(rest[1..close].to_string())),
                }
                rest = &rest[close + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else if !rest.is_empty() {
            out.push(Part::Key(rest.to_string()));
        }
    }
    out
}

/// The name in a serde message such as "missing field `kind`".
fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// Where a definition is parsed from (in the parser's messages, which are turned into fields).
const SOURCE: &str = "api";

/// Checks a definition (a JSON object in the shape of a `[[monitor]]` table) against the file's
/// configuration `base` (its destinations): the monitor it defines, or what is wrong and where.
/// Uniqueness against other monitors (name, heartbeat token) is the caller's to check.
pub fn check(definition: &Value, base: &Config) -> std::result::Result<Monitor, Invalid> {
    let Some(obj) = definition.as_object() else {
        return Err(Invalid {
            field: Vec::new(),
            message: "a monitor is a JSON object with the keys of a [[monitor]] table of monitor.toml (name, kind, target, …)".into(),
        });
    };
    api_rules(obj)?;

    // The file's destinations by name (the parser only checks that a named one exists; the
    // service uses the file's own), then the monitor, one key per line so that a line number
    // in a message names the key.
    let mut text = String::new();
    for name in base.destinations.keys() {
        text.push_str(&format!(
            "[destinations.{}]\ntype = \"webhook\"\nurl = \"http://127.0.0.1/\"\n",
            quoted(name)
        ));
    }
    // The file's [defaults], so an API monitor gets what the file's monitors get.
    text.push_str(&base.defaults_toml);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("[[monitor]]\n");
    let mut line = text.lines().count() + 1;
    let mut keys: Vec<(usize, &str)> = Vec::new();
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let mut at = vec![Part::Key(k.clone())];
        let value = inline(v, &mut at)?;
        keys.push((line, k));
        let entry = format!("{} = {value}\n", quoted(k));
        line += entry.matches('\n').count();
        text.push_str(&entry);
    }

    let mut cfg = crate::config::parse(SOURCE, &text).map_err(|e| {
        let msg = e.to_string();
        let rest = msg
            .strip_prefix(SOURCE)
            .and_then(|r| r.strip_prefix(':'))
            .unwrap_or(&msg);
        let (line, rest) = match rest.split_once(": ") {
            Some((n, r)) if n.trim().parse::<usize>().is_ok() => {
                (n.trim().parse::<usize>().unwrap_or(0), r)
            }
            _ => (0, rest.trim_start()),
        };
        // "monitor[NAME].key: what" or "monitor.name: what": a rule of the parser
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        let prefix = format!("monitor[{name}].");
        if let Some(tail) = rest.strip_prefix(&prefix)
            && let Some((key, what)) = tail.split_once(": ")
        {
            return Invalid {
                field: parse_key(key),
                message: what.to_string(),
            };
        }
        if let Some(what) = rest.strip_prefix("monitor.name: ") {
            return Invalid::at("name", what);
        }
        // a TOML or shape error: the line names the key, or the message does
        let key = keys
            .iter()
            .rev()
            .find(|(l, _)| *l <= line)
            .map(|(_, k)| *k)
            .filter(|_| line > 0)
            .or_else(|| backticked(rest).filter(|_| rest.starts_with("missing field")));
        let message = rest
            .strip_prefix("TOML parse error")
            .map_or(rest, str::trim)
            .to_string();
        Invalid {
            field: key
                .map(|k| vec![Part::Key(k.to_string())])
                .unwrap_or_default(),
            message,
        }
    })?;
    cfg.monitors.pop().ok_or_else(|| Invalid {
        field: Vec::new(),
        message: "no monitor in the body".into(),
    })
}

// ---------------------------------------------------------------- secrets

/// A URL with its password and query values hidden (unchanged when it has neither, or is not
/// a URL).
fn redacted_url(s: &str) -> String {
    let Ok(mut u) = url::Url::parse(s) else {
        return s.to_string();
    };
    let mut changed = false;
    if u.password().is_some() {
        let _ = u.set_password(Some(REDACTED));
        changed = true;
    }
    if u.query().is_some_and(|q| !q.is_empty()) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), REDACTED.to_string()))
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        s.to_string()
    }
}

/// The definition as shown to clients: `bearer`, `basic_password`, `password` and every
/// header value replaced by [`REDACTED`], the password and query values of an http target
/// too.
pub fn redacted(definition: &Map<String, Value>) -> Map<String, Value> {
    let mut out = definition.clone();
    for k in SECRET_FIELDS {
        if let Some(v) = out.get_mut(k)
            && !v.is_null()
        {
            *v = Value::String(REDACTED.into());
        }
    }
    if let Some(Value::Object(h)) = out.get_mut("headers") {
        for v in h.values_mut() {
            *v = Value::String(REDACTED.into());
        }
    }
    if out.get("kind").and_then(Value::as_str) == Some("http")
        && let Some(Value::String(t)) = out.get_mut("target")
    {
        *t = redacted_url(t);
    }
    out
}

/// Where `new` holds a secret exactly as [`redacted`] shows `old`'s, puts `old`'s back: a
/// client that sends back what it read keeps the secrets it could not see.
pub fn keep_secrets(new: &mut Map<String, Value>, old: &Map<String, Value>) {
    let shown = redacted(old);
    for k in SECRET_FIELDS.into_iter().chain(["target"]) {
        if let (Some(n), Some(s), Some(o)) = (new.get(k), shown.get(k), old.get(k))
            && n == s
        {
            let o = o.clone();
            new.insert(k.to_string(), o);
        }
    }
    if let (Some(Value::Object(nh)), Some(Value::Object(oh))) =
        (new.get_mut("headers"), old.get("headers"))
    {
        for (name, v) in nh.iter_mut() {
            if v.as_str() == Some(REDACTED)
                && let Some(o) = oh.get(name)
            {
                *v = o.clone();
            }
        }
    }
}

// ---------------------------------------------------------------- the service's source

/// The stored monitors as a source of the running service (origin [`Origin::Api`]). A stored
/// monitor that no longer checks against the file (a destination it names was removed from
/// monitor.toml) is left out and logged; the others run.
#[derive(Debug, Clone)]
pub struct ApiMonitors {
    db: Db,
}

impl ApiMonitors {
    pub fn new(db: Db) -> Arc<Self> {
        Arc::new(Self { db })
    }
}

impl MonitorSource for ApiMonitors {
    fn origin(&self) -> Origin {
        Origin::Api
    }

    fn monitors<'a>(&'a self, base: &'a Config) -> BoxFuture<'a, Result<Vec<Monitor>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for m in list(&self.db).await? {
                match check(&Value::Object(m.definition), base) {
                    Ok(monitor) => out.push(monitor),
                    Err(e) => tracing::warn!(
                        monitor = %m.name,
                        error = %e,
                        "a monitor stored through the API does not check against the configuration; it does not run"
                    ),
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Config {
        crate::config::parse(
            "m.toml",
            "[destinations.ops]\ntype = \"slack\"\nwebhook = \"env:X\"\n",
        )
        .unwrap()
    }

    fn invalid(def: Value) -> Invalid {
        check(&def, &base()).unwrap_err()
    }

    #[test]
    fn a_definition_is_parsed_by_the_file_rules() {
        let m = check(
            &json!({"name": "api", "kind": "http", "target": "http://127.0.0.1:8080/health",
                "interval": "30s", "conditions": [".status == 200"], "alerts": ["ops"],
                "headers": {"X-Key": "k1"}, "group": "core", "description": null}),
            &base(),
        )
        .unwrap();
        assert_eq!(m.name, "api");
        assert_eq!(m.group.as_deref(), Some("core"));
        assert_eq!(m.interval, std::time::Duration::from_secs(30));
        assert_eq!(m.check.kind(), "http");
        assert_eq!(m.alerts[0].destination, "ops");
        assert_eq!(m.conditions.len(), 1);
    }

    #[test]
    fn the_files_defaults_apply_to_api_monitors() {
        let base = crate::config::parse(
            "m.toml",
            "[destinations.ops]\ntype = \"slack\"\nwebhook = \"env:X\"\n\n\
             [defaults]\ninterval = \"15s\"\ntimeout = \"4s\"\nfailure_threshold = 5\n\
             alerts = [\"ops\"]\n",
        )
        .unwrap();
        let file = crate::config::parse(
            "m.toml",
            "[destinations.ops]\ntype = \"slack\"\nwebhook = \"env:X\"\n\n\
             [defaults]\ninterval = \"15s\"\ntimeout = \"4s\"\nfailure_threshold = 5\n\
             alerts = [\"ops\"]\n\n[[monitor]]\nname = \"f\"\nkind = \"tcp\"\ntarget = \"x:1\"\n",
        )
        .unwrap();
        let m = check(&json!({"name": "a", "kind": "tcp", "target": "x:1"}), &base).unwrap();
        let f = &file.monitors[0];
        assert_eq!(m.interval, std::time::Duration::from_secs(15));
        assert_eq!(m.interval, f.interval);
        assert_eq!(m.timeout, f.timeout);
        assert_eq!(format!("{:?}", m.alerts), format!("{:?}", f.alerts));
        assert_eq!(m.alerts[0].failure_threshold, 5);
        // what the monitor says wins, as in the file
        let m = check(
            &json!({"name": "a", "kind": "tcp", "target": "x:1", "interval": "1m"}),
            &base,
        )
        .unwrap();
        assert_eq!(m.interval, std::time::Duration::from_secs(60));
        // without [defaults], the built-in ones
        let m = check(
            &json!({"name": "a", "kind": "tcp", "target": "x:1"}),
            &super::tests::base(),
        )
        .unwrap();
        assert_eq!(m.interval, crate::config::DEFAULT_INTERVAL);
    }

    #[test]
    fn errors_name_the_field() {
        let e = invalid(json!({"name": "a", "kind": "tcp"}));
        assert_eq!(e.field, vec![Part::Key("target".into())]);
        assert_eq!(e.message, "is missing");

        let e = invalid(json!({"name": "a", "kind": "tcp", "target": "x:1", "body": "b"}));
        assert_eq!(e.field, vec![Part::Key("body".into())]);
        assert_eq!(e.message, "is not a setting of a tcp monitor");

        let e = invalid(json!({"name": "a", "kind": "tcp", "target": "x:1", "frobnicate": 1}));
        assert_eq!(e.field, vec![Part::Key("frobnicate".into())]);
        assert!(e.message.contains("unknown field"), "{}", e.message);

        let e = invalid(json!({"name": "a", "kind": "tcp", "target": "x:1", "interval": 5}));
        assert_eq!(e.field, vec![Part::Key("interval".into())]);

        let e = invalid(json!({"name": "a", "kind": "tcp", "target": "x:1", "interval": "soon"}));
        assert_eq!(e.field, vec![Part::Key("interval".into())]);

        let e = invalid(json!({"name": "a", "kind": "http", "target": "http://h/",
            "conditions": [".status == 200", ".a =="]}));
        assert_eq!(
            e.field,
            vec![Part::Key("conditions".into()), Part::Index(1)]
        );

        let e = invalid(json!({"name": "a", "kind": "tcp", "target": "x:1", "alerts": ["nope"]}));
        assert_eq!(e.field, vec![Part::Key("alerts".into())]);
        assert!(
            e.message.contains("\"nope\"") && e.message.contains("ops"),
            "{}",
            e.message
        );

        let e = invalid(json!({"kind": "tcp", "target": "x:1"}));
        assert_eq!(e.field, vec![Part::Key("name".into())]);
        assert!(e.message.contains("missing field"), "{}", e.message);

        let e = invalid(json!({"name": "  ", "kind": "tcp", "target": "x:1"}));
        assert_eq!(e.field, vec![Part::Key("name".into())]);

        let e = invalid(json!({"name": "a", "kind": "gopher", "target": "x:1"}));
        assert_eq!(e.field, vec![Part::Key("kind".into())]);

        let e = invalid(json!(["not", "an", "object"]));
        assert!(e.field.is_empty());
        assert_eq!(
            invalid(json!({"name": "a", "kind": "tcp", "target": "x:1",
            "conditions": [null]}))
            .field,
            vec![Part::Key("conditions".into()), Part::Index(0)]
        );
    }

    #[test]
    fn api_monitors_take_secrets_by_value_only() {
        for (field, def) in [
            (
                "bearer",
                json!({"name": "a", "kind": "http", "target": "http://h/", "bearer": "env:HOME"}),
            ),
            (
                "basic_password",
                json!({"name": "a", "kind": "http", "target": "http://h/", "basic_user": "u", "basic_password": "file:/etc/shadow"}),
            ),
            (
                "password",
                json!({"name": "a", "kind": "ssh", "target": "h", "command": "true", "password": "cmd:id"}),
            ),
        ] {
            let e = invalid(def);
            assert_eq!(e.field, vec![Part::Key(field.into())]);
            assert!(e.message.contains("send the value itself"), "{}", e.message);
        }
        let e = invalid(json!({"name": "a", "kind": "ssh", "target": "h", "command": "id"}));
        assert_eq!(e.field, vec![Part::Key("kind".into())]);
        assert!(e.message.contains("monitor.toml"), "{}", e.message);
        let e = invalid(json!({"name": "a", "kind": "http", "target": "http://h/",
            "headers": {"X-Key": "cmd:cat /etc/passwd"}}));
        assert_eq!(
            e.field,
            vec![Part::Key("headers".into()), Part::Key("X-Key".into())]
        );
        // a vault: secret would be read with the server's Vault token
        let e = invalid(json!({"name": "a", "kind": "http", "target": "http://h/",
            "headers": {"X-Key": "vault:secret/prod/db#password"}}));
        assert!(e.message.contains("vault:"), "{}", e.message);
        let e = invalid(
            json!({"name": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "kind": "tcp", "target": "x:1"}),
        );
        assert_eq!(e.field, vec![Part::Key("name".into())]);
        let e = invalid(json!({"name": "a\u{202e}b", "kind": "tcp", "target": "x:1"}));
        assert_eq!(e.field, vec![Part::Key("name".into())]);
        // odd names and values are data, not TOML
        let m = check(
            &json!({"name": "we\"ird\\ ]name\n", "kind": "http", "target": "http://h/",
                "body": "line1\nline2 \"q\" '''", "headers": {"a b\"": "v"}}),
            &base(),
        )
        .unwrap();
        assert_eq!(m.name, "we\"ird\\ ]name");
    }

    #[test]
    fn secrets_are_redacted_and_kept_when_sent_back() {
        let stored = json!({"name": "a", "kind": "http",
            "target": "https://user:pw@h.example/x?key=abc", "bearer": "tok",
            "headers": {"X-Key": "k1", "X-Other": "k2"}});
        let stored = stored.as_object().unwrap().clone();
        let shown = redacted(&stored);
        let text = serde_json::to_string(&shown).unwrap();
        for secret in ["pw", "abc", "tok", "k1", "k2"] {
            assert!(
                !text.contains(&format!("\"{secret}\""))
                    && !text.contains(&format!(":{secret}@"))
                    && !text.contains(&format!("={secret}")),
                "{secret} in {text}"
            );
        }
        assert_eq!(shown["bearer"], REDACTED);
        // the redacted form sent back keeps the secrets; a new value replaces them
        let mut back = shown.clone();
        back.insert(
            "headers".into(),
            json!({"X-Key": REDACTED, "X-Other": "new"}),
        );
        keep_secrets(&mut back, &stored);
        assert_eq!(back["bearer"], "tok");
        assert_eq!(back["target"], stored["target"]);
        assert_eq!(back["headers"], json!({"X-Key": "k1", "X-Other": "new"}));
    }

    async fn store_round_trip(url: &str) {
        let db = Db::open(url).await.unwrap();
        let def = json!({"name": "api", "kind": "tcp", "target": "127.0.0.1:1"});
        let mut m = Stored {
            id: Uuid::now_v7(),
            name: "api".into(),
            definition: def.as_object().unwrap().clone(),
            version: 1,
            created_ms: 1000,
            updated_ms: 1000,
        };
        assert_eq!(create(&db, &m).await.unwrap(), Written::Done);
        let other = Stored {
            id: Uuid::now_v7(),
            ..m.clone()
        };
        assert_eq!(create(&db, &other).await.unwrap(), Written::NameTaken);
        assert_eq!(get(&db, "api").await.unwrap().as_ref(), Some(&m));
        assert_eq!(
            get(&db, &m.id.to_string()).await.unwrap().as_ref(),
            Some(&m)
        );
        assert_eq!(get(&db, &other.id.to_string()).await.unwrap(), None);

        let second = Stored {
            id: Uuid::now_v7(),
            name: "db".into(),
            definition: json!({"name": "db", "kind": "tcp", "target": "127.0.0.1:2"})
                .as_object()
                .unwrap()
                .clone(),
            created_ms: 2000,
            ..m.clone()
        };
        assert_eq!(create(&db, &second).await.unwrap(), Written::Done);

        // update only from the expected revision
        m.definition.insert("interval".into(), json!("5s"));
        m.version = 2;
        m.updated_ms = 3000;
        assert_eq!(update(&db, &m, 7).await.unwrap(), Written::VersionMismatch);
        assert_eq!(update(&db, &m, 1).await.unwrap(), Written::Done);
        assert_eq!(get(&db, "api").await.unwrap().unwrap().version, 2);
        let renamed = Stored {
            name: "db".into(),
            version: 3,
            ..m.clone()
        };
        assert_eq!(update(&db, &renamed, 2).await.unwrap(), Written::NameTaken);
        let gone = Stored {
            id: Uuid::now_v7(),
            name: "gone".into(),
            ..m.clone()
        };
        assert_eq!(update(&db, &gone, 1).await.unwrap(), Written::NotFound);

        // the source hands the stored monitors to the service, oldest first
        let source = ApiMonitors::new(db.clone());
        assert_eq!(source.origin(), Origin::Api);
        let got = source.monitors(&base()).await.unwrap();
        let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["api", "db"]);
        assert_eq!(got[0].interval, std::time::Duration::from_secs(5));

        assert_eq!(
            delete(&db, m.id, Some(1)).await.unwrap(),
            Written::VersionMismatch
        );
        assert_eq!(delete(&db, m.id, Some(2)).await.unwrap(), Written::Done);
        assert_eq!(delete(&db, m.id, None).await.unwrap(), Written::NotFound);
        assert_eq!(delete(&db, second.id, None).await.unwrap(), Written::Done);
        assert!(list(&db).await.unwrap().is_empty());
        db.close().await;
    }

    #[tokio::test]
    async fn stored_monitors_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        store_round_trip(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
    }

    #[tokio::test]
    async fn stored_monitors_on_postgres() {
        let base = match std::env::var("OPSKIT_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "OPSKIT_TEST_POSTGRES_URL is not set (CI=true): run scripts/test"
                );
                eprintln!("skipping: OPSKIT_TEST_POSTGRES_URL is not set");
                return;
            }
        };
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        let name = format!("opskit_defs_{}", Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut u = url::Url::parse(&base).unwrap();
        u.set_path(&format!("/{name}"));
        store_round_trip(u.as_str()).await;
    }
}
