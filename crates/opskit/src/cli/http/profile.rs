//! Profiles in `config.toml`: a base URL, headers, query, auth, timeouts, retry, rate,
//! pagination and cache settings under a name, so `opskit get /servers --profile inventory`
//! replaces a page of Python.
//!
//! The file is `$OPSKIT_CONFIG` when set, else `$XDG_CONFIG_HOME/opskit/config.toml`, else
//! `~/.config/opskit/config.toml`. Unknown keys and bad values are errors that name the key and
//! the line. Secrets are written `env:VAR`, `file:PATH` or `cmd:COMMAND` (a literal value works
//! but is never required), and `opskit config show` prints references, never values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use super::values::{PageStyle, Rate, SecretRef, Span};

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profile used when neither `--profile` nor `OPSKIT_PROFILE` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// Named profiles: `[profiles.NAME]`.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One named profile. Every field is optional; flags override it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Base URL relative request URLs are appended to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<Url>,
    /// Headers sent with every request (items override them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Query parameters added to every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Headers whose values are secrets besides those that look like credentials
    /// (`Authorization`, `X-Api-Key`, `…Token`, …): redacted by `config show`, `--curl`,
    /// `--offline` and `-v`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// Query parameters whose values are secrets besides `api_key`, `token`, `…key`, ….
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_query: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Longest time spent waiting for retries, in all (`--retry-max-wait`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max_wait: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_unsafe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Cache successful GET responses on disk for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_status: Option<bool>,
    /// Extra CA certificates (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (`--cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM) when not in `client_cert` (`--key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Do not verify the server's certificate (`--insecure`); warned on stderr on every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paginate: Option<PaginateConfig>,
}

/// How a profile authenticates. `type` selects the kind.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// HTTP Basic.
    Basic {
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<SecretRef>,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer { token: SecretRef },
    /// An API key in a header or the query string.
    ApiKey {
        name: String,
        value: SecretRef,
        #[serde(default, rename = "in")]
        location: KeyLocation,
    },
    /// OAuth2 client credentials grant; the token is fetched and refreshed by the engine.
    Oauth2ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: SecretRef,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// Send the client id and secret in the form body instead of HTTP Basic.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        client_secret_in_body: bool,
    },
    /// OAuth2 refresh-token grant: on a 401 (or before the first request when no access token
    /// is given) the refresh token is traded for a new access token.
    Oauth2RefreshToken {
        token_url: Url,
        refresh_token: SecretRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_token: Option<SecretRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// POST a username and password (JSON, or a form as FastAPI's OAuth2 password flow) to
    /// `login_url`, send the access token found at `token_pointer` as a bearer token, renew it
    /// at `refresh_url` (the refresh token sent in `refresh_field`), else by a new login. With
    /// `--session` the tokens are kept between runs (see `super::session`).
    Login(Box<LoginConfig>),
}

/// The keys of `type = "login"` (see [`AuthConfig::Login`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    pub login_url: Url,
    pub username: SecretRef,
    pub password: SecretRef,
    /// `json` (default) or `form` (application/x-www-form-urlencoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<LoginBodyKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_field: Option<String>,
    /// More fields sent with the login, e.g. `{ grant_type = "password" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub login_fields: BTreeMap<String, String>,
    /// JSON pointer to the access token (default `/access_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_pointer: Option<String>,
    /// JSON pointer to its lifetime in seconds (default `/expires_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<Url>,
    /// JSON pointer to the refresh token (default `/refresh_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_pointer: Option<String>,
    /// The body field the refresh token is sent in (default `refresh_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_field: Option<String>,
    /// `json` (default) or `form`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_body: Option<LoginBodyKind>,
}

/// How a `login` auth encodes its login or refresh body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginBodyKind {
    Json,
    Form,
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KeyLocation {
    #[default]
    Header,
    Query,
}

/// Pagination settings (the same names as the `--page-*` flags).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PaginateConfig {
    pub style: Option<PageStyle>,
    /// JSON pointer to the item array in each page (`/data`); the body itself when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// Page-number parameter (style `page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_param: Option<String>,
    /// First page number (style `page`), 1 unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// Offset parameter (style `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_param: Option<String>,
    /// Page-size parameter (`per_page`, `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    /// Page size to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Cursor parameter sent back (style `cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_param: Option<String>,
    /// JSON pointer to the next cursor in each page (style `cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// JSON pointer to the total page count (style `page`), to stop without an extra request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<String>,
}

/// Where the config file lives.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPSKIT_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("opskit").join("config.toml"))
}

/// A config file problem; always a usage error.
#[derive(Debug)]
pub struct ConfigError {
    pub message: String,
    pub hint: Option<String>,
    /// Every problem of the file, one line each (`FILE:LINE: KEY: what`); the message names the
    /// first.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn new(message: String) -> Self {
        ConfigError {
            message,
            hint: None,
            problems: Vec::new(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One problem in the file: where (line, key) and what.
struct Problem {
    line: Option<usize>,
    key: Option<String>,
    what: String,
}

impl Problem {
    fn show(&self, path: &Path) -> String {
        let mut s = path.display().to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
        }
        if let Some(k) = &self.key {
            s.push_str(&format!(": {k}"));
        }
        format!("{s}: {}", self.what)
    }
}

/// The most problems reported for one file.
const MAX_PROBLEMS: usize = 100;

/// Parses config text; the error names the file, line and key of every problem.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    let (cfg, problems) = check(text);
    match (cfg, problems.is_empty()) {
        (Some(cfg), true) => Ok(cfg),
        _ => {
            let problems: Vec<String> = problems.iter().map(|p| p.show(path)).collect();
            let hint = if problems.len() > 1 {
                "`opskit config check` lists every error of the file".to_owned()
            } else {
                "see `opskit http --help` and the README's http section for the keys".to_owned()
            };
            Err(ConfigError {
                message: problems.first().cloned().unwrap_or_default(),
                hint: Some(hint),
                problems,
            })
        }
    }
}

/// Every problem of the file, in the order found: the TOML parser stops at the first, so the
/// lines of each problem are blanked and the text parsed again (the line numbers stay), until it
/// parses; then the checks that need more than one value run on what is left.
fn check(text: &str) -> (Option<ConfigFile>, Vec<Problem>) {
    let mut work: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let joined = work.join("\n");
        let err = match toml::from_str::<ConfigFile>(&joined) {
            Ok(cfg) => {
                problems.extend(validate(&cfg, text));
                return (Some(cfg), problems);
            }
            Err(e) => e,
        };
        let Some(span) = err.span() else {
            problems.push(Problem {
                line: None,
                key: None,
                what: err.message().trim_end().to_owned(),
            });
            break;
        };
        let first = line_index(&joined, span.start);
        let last = line_index(&joined, span.end.saturating_sub(1).max(span.start));
        // a table header takes its whole table with it
        let mut end = last;
        if is_header(&work[first]) {
            end = (first + 1..work.len())
                .find(|&l| is_header(&work[l]))
                .map_or(work.len() - 1, |l| l - 1);
        }
        // a table that lost a bad line may now lack it (`missing field`): not a second error
        let follows_from_earlier = is_header(&work[first])
            && problems
                .iter()
                .any(|p: &Problem| p.line.is_some_and(|l| l > first && l <= end + 1));
        if !follows_from_earlier {
            problems.push(Problem {
                line: Some(first + 1),
                key: key_at(&work, first),
                what: err.message().trim_end().to_owned(),
            });
        }
        let mut changed = false;
        for l in first..=end.min(work.len().saturating_sub(1)) {
            if !work[l].trim_start().starts_with('#') && !work[l].trim().is_empty() {
                work[l] = "#".to_owned();
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (None, problems)
}

fn line_index(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn is_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

fn header_name(line: &str) -> String {
    line.trim()
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The dotted key written on line `idx` (`profiles.x.timeout`), from its table header and its
/// own key.
fn key_at(lines: &[String], idx: usize) -> Option<String> {
    let line = lines.get(idx)?;
    if is_header(line) {
        return Some(header_name(line));
    }
    let table = lines[..idx]
        .iter()
        .rev()
        .find(|l| is_header(l))
        .map(|l| header_name(l));
    let own = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty());
    match (table, own) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

/// The line of `key` in the table `[profiles.NAME]` (or the header's line without a key).
fn line_of(text: &str, table: &str, key: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| is_header(l) && header_name(l) == table)?;
    let Some(key) = key else {
        return Some(start + 1);
    };
    lines[start + 1..]
        .iter()
        .take_while(|l| !is_header(l))
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
        })
        .map_or(Some(start + 1), |i| Some(start + 2 + i))
}

/// Checks that need more than one value (a pagination style with its pointers, …): every
/// problem, each with its line and key.
fn validate(cfg: &ConfigFile, text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, p) in &cfg.profiles {
        let table = format!("profiles.{name}");
        let mut at = |table: &str, key: Option<&str>, what: String| {
            problems.push(Problem {
                line: line_of(text, table, key),
                key: Some(match key {
                    Some(k) => format!("{table}.{k}"),
                    None => table.to_owned(),
                }),
                what,
            })
        };
        if let Some(url) = &p.base_url
            && !matches!(url.scheme(), "http" | "https")
        {
            at(
                &table,
                Some("base_url"),
                format!("`{url}` must start with http:// or https://"),
            );
        }
        if let Some(AuthConfig::Login(l)) = &p.auth {
            let auth_table = format!("{table}.auth");
            for (key, ptr) in [
                ("token_pointer", &l.token_pointer),
                ("expires_pointer", &l.expires_pointer),
                ("refresh_token_pointer", &l.refresh_token_pointer),
            ] {
                if let Some(ptr) = ptr
                    && !ptr.starts_with('/')
                {
                    at(
                        &auth_table,
                        Some(key),
                        format!(
                            "`{ptr}` must be a JSON pointer starting with `/` (e.g. /access_token)"
                        ),
                    );
                }
            }
        }
        if let Some(pg) = &p.paginate {
            let pg_table = format!("{table}.paginate");
            for (key, ptr) in [
                ("items", &pg.items),
                ("cursor", &pg.cursor),
                ("total_pages", &pg.total_pages),
            ] {
                if let Some(ptr) = ptr
                    && !ptr.is_empty()
                    && !ptr.starts_with('/')
                {
                    at(
                        &pg_table,
                        Some(key),
                        format!("`{ptr}` must be a JSON pointer starting with `/` (e.g. /data)"),
                    );
                }
            }
            if pg.style == Some(PageStyle::Cursor) && pg.cursor.is_none() {
                at(
                    &pg_table,
                    None,
                    "style `cursor` needs `cursor` (JSON pointer to the next cursor)".into(),
                );
            }
        }
    }
    if let Some(d) = &cfg.default_profile
        && !cfg.profiles.contains_key(d)
    {
        let line = text
            .lines()
            .take_while(|l| !is_header(l))
            .position(|l| {
                l.split_once('=')
                    .is_some_and(|(k, _)| k.trim() == "default_profile")
            })
            .map(|i| i + 1);
        problems.push(Problem {
            line,
            key: Some("default_profile".into()),
            what: format!("`{d}` is not defined under [profiles]"),
        });
    }
    problems
}

/// Loads the config file; `Ok(None)` when it does not exist.
pub fn load() -> Result<Option<(PathBuf, ConfigFile)>, ConfigError> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path.clone(), parse(&text, &path)?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Picks the profile: `--profile`/`OPSKIT_PROFILE` (must exist) or the file's `default_profile`.
pub fn select(name: Option<&str>) -> Result<Option<(String, Profile)>, ConfigError> {
    let loaded = load()?;
    let Some(name) = name
        .map(str::to_owned)
        .or_else(|| loaded.as_ref().and_then(|(_, c)| c.default_profile.clone()))
    else {
        return Ok(None);
    };
    let shown = config_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the config file".into());
    let Some((_, cfg)) = loaded else {
        return Err(ConfigError {
            message: format!("profile `{name}` not found: {shown} does not exist"),
            hint: Some(format!(
                "create it with a [profiles.{name}] table, or set OPSKIT_CONFIG"
            )),
            problems: Vec::new(),
        });
    };
    match cfg.profiles.get(&name) {
        Some(p) => Ok(Some((name, p.clone()))),
        None => {
            let known: Vec<_> = cfg.profiles.keys().map(String::as_str).collect();
            Err(ConfigError {
                message: format!("profile `{name}` is not defined in {shown}"),
                hint: Some(if known.is_empty() {
                    "the file defines no profiles".into()
                } else {
                    format!("defined profiles: {}", known.join(", "))
                }),
                problems: Vec::new(),
            })
        }
    }
}

/// `opskit config show`: the parsed config with secrets redacted.
pub fn render_redacted(cfg: &ConfigFile) -> Result<String, ConfigError> {
    // SecretRef serialises as its redacted form, so inline secrets never appear; header and
    // query values are redacted by name, as --curl, --offline and -v do.
    let mut cfg = cfg.clone();
    for p in cfg.profiles.values_mut() {
        for (k, v) in p.headers.iter_mut() {
            *v = super::show::redact_value(k, v, &p.secret_headers);
        }
        for (k, v) in p.query.iter_mut() {
            if super::show::is_sensitive_param(k, &p.secret_query) {
                *v = super::show::REDACTED.to_owned();
            }
        }
    }
    toml::to_string_pretty(&cfg)
        .map_err(|e| ConfigError::new(format!("cannot render the config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
default_profile = "cmdb"

[profiles.cmdb]
base_url = "https://cmdb.example/api/v1"
timeout = "30s"
retries = 3
rate = "5/s"
headers = { Accept = "application/json" }
query = { status = "active" }

[profiles.cmdb.auth]
type = "bearer"
token = "env:CMDB_TOKEN"

[profiles.cmdb.paginate]
style = "page"
items = "/hosts"
size_param = "per_page"
size = 100

[profiles.gh.auth]
type = "api_key"
name = "X-Key"
value = "inline-secret"
in = "query"
"#;

    #[test]
    fn a_full_profile_parses() {
        let cfg = parse(GOOD, Path::new("c.toml")).unwrap();
        let p = &cfg.profiles["cmdb"];
        assert_eq!(p.retries, Some(3));
        assert_eq!(p.timeout.unwrap().0.as_secs(), 30);
        assert!(matches!(p.auth, Some(AuthConfig::Bearer { .. })));
        assert!(matches!(
            cfg.profiles["gh"].auth,
            Some(AuthConfig::ApiKey {
                location: KeyLocation::Query,
                ..
            })
        ));
    }

    #[test]
    fn show_redacts_inline_secrets_and_keeps_references() {
        let cfg = parse(GOOD, Path::new("c.toml")).unwrap();
        let shown = render_redacted(&cfg).unwrap();
        assert!(!shown.contains("inline-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains("env:CMDB_TOKEN"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "[profiles.x]\nbase_url = \"http://h\"\ntimeuot = \"3s\"\n";
        let e = parse(text, Path::new("c.toml")).unwrap_err();
        assert!(e.message.contains("timeuot"), "{}", e.message);
        assert!(
            e.message.starts_with("c.toml:3: profiles.x.timeuot: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_value_is_named_with_its_line() {
        let text = "[profiles.x]\n\ntimeout = \"soon\"\n";
        let e = parse(text, Path::new("c.toml")).unwrap_err();
        assert!(
            e.message.starts_with("c.toml:3: profiles.x.timeout: "),
            "{}",
            e.message
        );
        assert!(e.message.contains("is not a duration"), "{}", e.message);
        let text = "[profiles.x.auth]\ntype = \"kerberos\"\n";
        let e = parse(text, Path::new("c.toml")).unwrap_err();
        assert!(e.message.contains("kerberos"), "{}", e.message);
    }

    #[test]
    fn cursor_style_needs_a_pointer() {
        let text = "[profiles.x.paginate]\nstyle = \"cursor\"\n";
        let e = parse(text, Path::new("c.toml")).unwrap_err();
        assert!(e.message.contains("cursor"), "{}", e.message);
        assert!(
            e.message.starts_with("c.toml:1: profiles.x.paginate: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn every_problem_is_reported_with_line_and_key() {
        let text = "default_profile = \"nope\"\n[profiles.a]\nretires = 3\ntimeout = \"soon\"\n\n[profiles.b.auth]\ntype = \"kerberos\"\n\n[profiles.c]\nbase_url = \"ftp://h\"\n[profiles.c.paginate]\nitems = \"data\"\n";
        let e = parse(text, Path::new("c.toml")).unwrap_err();
        let all = e.problems.join("\n");
        for want in [
            "c.toml:3: profiles.a.retires: ",
            "c.toml:4: profiles.a.timeout: ",
            "c.toml:7: profiles.b.auth.type: ",
            "c.toml:10: profiles.c.base_url: ",
            "c.toml:12: profiles.c.paginate.items: ",
            "c.toml:1: default_profile: ",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        assert_eq!(e.problems.len(), 6, "{all}");
        // a broken line does not hide the rest
        let e = parse(
            "[profiles.a\nx = 1\n[profiles.b]\nrate = \"lots\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(
            e.problems
                .iter()
                .any(|p| p.contains("c.toml:4: profiles.b.rate")),
            "{:?}",
            e.problems
        );
    }
}
