//! `--session NAME`: cookies and the `login` tokens of a profile kept between runs, as xh and
//! HTTPie sessions keep them.
//!
//! A session is one JSON file, `$XDG_STATE_HOME/opskit/sessions/SCOPE/NAME.json` (default
//! `~/.local/state`), where SCOPE is `profile-NAME` for a profile and `HOST_PORT` without one; a
//! NAME with a `/` is the file itself. The directories are created 0700 and the file 0600, and it
//! is replaced atomically (a temp file in the same directory, then a rename), so a crash leaves
//! the old session or the new one, never half of either. Secrets in it are never printed: `-v`
//! says that a login or refresh happened, not what it gave.
//!
//! The `login` auth kind itself (login, refresh, rotation, one re-login at most) is the
//! engine's ([`opskit_http::LoginAuth`]); this module maps the profile's `[auth]` to it, starts
//! it from the saved tokens and saves every new set.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opskit_http as engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::profile::{LoginBodyKind, LoginConfig};
use crate::exit::Failure;

/// The format version written in every session file.
const VERSION: u32 = 1;

/// A profile's `type = "login"` auth as the engine's.
pub(crate) fn engine_login(c: &LoginConfig) -> engine::Auth {
    let LoginConfig {
        login_url,
        username,
        password,
        body,
        username_field,
        password_field,
        login_fields,
        token_pointer,
        expires_pointer,
        refresh_url,
        refresh_token_pointer,
        refresh_field,
        refresh_body,
    } = c;
    let kind = |k: &Option<LoginBodyKind>| match k {
        Some(LoginBodyKind::Form) => engine::LoginBody::Form,
        Some(LoginBodyKind::Json) | None => engine::LoginBody::Json,
    };
    let mut l = engine::LoginAuth::new(
        login_url.as_str(),
        username.to_secret(),
        password.to_secret(),
    );
    l.body = kind(body);
    l.refresh_body = kind(refresh_body);
    if let Some(f) = username_field {
        l.username_field = f.clone();
    }
    if let Some(f) = password_field {
        l.password_field = f.clone();
    }
    l.extra_fields = login_fields
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(p) = token_pointer {
        l.token_pointer = p.clone();
    }
    if let Some(p) = expires_pointer {
        l.expires_pointer = p.clone();
    }
    l.refresh_url = refresh_url.as_ref().map(|u| u.to_string());
    if let Some(p) = refresh_token_pointer {
        l.refresh_token_pointer = p.clone();
    }
    if let Some(f) = refresh_field {
        l.refresh_field = f.clone();
    }
    engine::Auth::Login(Box::new(l))
}

/// What a session file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFile {
    opskit_session: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login: Option<SavedLogin>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<Cookie>,
}

/// The tokens of a `login` auth, with what they belong to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedLogin {
    /// The login URL and the username's source: tokens of another login are not used.
    login_url: String,
    username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

/// One cookie (RFC 6265, the parts a command-line client needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cookie {
    name: String,
    value: String,
    domain: String,
    /// Sent to `domain` itself only (no `Domain` attribute), not to its subdomains.
    host_only: bool,
    path: String,
    secure: bool,
    /// Unix seconds; none: kept until the server removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

/// An open session: the file's contents, written back on every change.
pub struct Session {
    name: String,
    path: PathBuf,
    data: Mutex<SessionFile>,
    /// `-v`: say on stderr when a login or refresh happened (never what it gave).
    announce: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Opens `--session NAME` (none without the flag). A file that cannot be read or parsed is a
/// usage error that says how to start again; a missing one is an empty session.
pub fn open(
    name: Option<&str>,
    reset: bool,
    profile: Option<&str>,
    url: &Url,
    announce: bool,
) -> Result<Option<Arc<Session>>, Failure> {
    let Some(name) = name else {
        return Ok(None);
    };
    let path = session_path(name, profile, url)?;
    let data = if reset {
        SessionFile::default()
    } else {
        read(&path)?
    };
    Ok(Some(Arc::new(Session {
        name: name.to_owned(),
        path,
        data: Mutex::new(SessionFile {
            opskit_session: VERSION,
            ..data
        }),
        announce,
    })))
}

/// Where `--session NAME` lives.
fn session_path(name: &str, profile: Option<&str>, url: &Url) -> Result<PathBuf, Failure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Failure::usage(format!(
            "--session `{name}`: a session name is letters, digits, `-`, `_` and `.`"
        ))
        .with_hint("or give a path with a `/` (e.g. ./ops.json) to choose the file yourself"));
    }
    let base = dirs::state_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local").join("state")))
        .ok_or_else(|| {
            Failure::usage("--session: cannot find a state directory")
                .with_hint("set XDG_STATE_HOME, or give the session as a path (./NAME.json)")
        })?;
    let scope = match profile {
        Some(p) => format!("profile-{}", safe(p)),
        None => {
            let host = url.host_str().unwrap_or("localhost");
            match url.port_or_known_default() {
                Some(port) => format!("{}_{port}", safe(host)),
                None => safe(host),
            }
        }
    };
    Ok(base
        .join("opskit")
        .join("sessions")
        .join(scope)
        .join(format!("{name}.json")))
}

/// A file-name-safe form of a profile or host name.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

fn how_to_restart(path: &Path) -> String {
    format!(
        "delete it (rm {}) or start the session afresh with --session-reset",
        path.display()
    )
}

fn read(path: &Path) -> Result<SessionFile, Failure> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SessionFile::default()),
        Err(e) => {
            return Err(
                Failure::usage(format!("cannot read the session {}: {e}", path.display()))
                    .with_hint(how_to_restart(path)),
            );
        }
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        // someone widened it: narrow it again and say so, the tokens may have been read
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        eprintln!(
            "warning: the session {} was readable by other users (mode {:o}); it is owner-only \
             again, but its tokens may have been read: --session-reset logs in afresh",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let data: SessionFile = serde_json::from_slice(&text).map_err(|e| {
        Failure::usage(format!(
            "the session {} is not a valid opskit session file ({e})",
            path.display()
        ))
        .with_hint(how_to_restart(path))
    })?;
    if data.opskit_session != VERSION {
        return Err(Failure::usage(format!(
            "the session {} has format version {}; this opskit reads version {VERSION}",
            path.display(),
            data.opskit_session
        ))
        .with_hint(how_to_restart(path)));
    }
    Ok(data)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Session {
    /// Starts a `login` (or `oauth2_refresh_token`) auth from the saved tokens, when they
    /// belong to the same login URL and username (or refresh URL and configured refresh token),
    /// and saves every token set it obtains. Other kinds are left as they are.
    pub fn attach(self: &Arc<Self>, auth: &mut engine::Auth) {
        let (owner, tokens, on_tokens) = match auth {
            engine::Auth::Login(l) => (
                (l.login_url.clone(), l.username_id()),
                &mut l.tokens,
                &mut l.on_tokens,
            ),
            engine::Auth::RefreshToken(r) => (
                (
                    r.refresh_url.clone(),
                    format!("refresh_token:{}", r.refresh_token_id()),
                ),
                &mut r.tokens,
                &mut r.on_tokens,
            ),
            _ => return,
        };
        if let Ok(data) = self.data.lock()
            && let Some(saved) = &data.login
            && saved.login_url == owner.0
            && saved.username == owner.1
        {
            *tokens = Some(engine::TokenSet {
                access_token: saved.access_token.clone().map(SecretString::from),
                refresh_token: saved.refresh_token.clone().map(SecretString::from),
                expires_at: saved
                    .expires_at
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            });
        }
        let session = Arc::clone(self);
        let url = owner.0.clone();
        *on_tokens = Some(engine::TokenSink::new(move |event, tokens| {
            if let Ok(mut data) = session.data.lock() {
                data.login = Some(SavedLogin {
                    login_url: owner.0.clone(),
                    username: owner.1.clone(),
                    access_token: tokens
                        .access_token
                        .as_ref()
                        .map(|t| t.expose_secret().to_owned()),
                    refresh_token: tokens
                        .refresh_token
                        .as_ref()
                        .map(|t| t.expose_secret().to_owned()),
                    expires_at: tokens.expires_at.map(unix),
                });
                session.save(&data);
            }
            if session.announce {
                let what = match event {
                    engine::TokenEvent::Login => format!("logged in at {url}"),
                    engine::TokenEvent::Refresh => "refreshed the access token".to_owned(),
                };
                eprintln!(
                    "* session {}: {what}; tokens saved to {}",
                    session.name,
                    session.path.display()
                );
            }
        }));
    }

    /// The `Cookie` header for `url` from the session's cookies (none when the request sets
    /// its own).
    pub fn cookie_header(&self, url: &Url, headers: &[(String, String)]) -> Option<String> {
        if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        {
            return None;
        }
        let data = self.data.lock().ok()?;
        let now = unix(SystemTime::now());
        let host = url.host_str()?.to_ascii_lowercase();
        let pairs: Vec<String> = data
            .cookies
            .iter()
            .filter(|c| c.expires.is_none_or(|e| e > now))
            .filter(|c| !c.secure || url.scheme() == "https")
            .filter(|c| domain_matches(&host, c))
            .filter(|c| path_matches(url.path(), &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Keeps the cookies a response from `url` sets, and saves the session (so a new session
    /// exists after its first run).
    pub fn absorb(&self, url: &Url, headers: &engine::HeaderMap) {
        let Ok(mut data) = self.data.lock() else {
            return;
        };
        let now = unix(SystemTime::now());
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let Some(c) = parse_set_cookie(v, url) else {
                continue;
            };
            data.cookies
                .retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
            if c.expires.is_none_or(|e| e > now) {
                data.cookies.push(c);
            }
        }
        data.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        self.save(&data);
    }

    /// Writes the session: directories 0700, the file 0600 through a temp file and a rename.
    /// A failure is a warning (the request itself worked).
    fn save(&self, data: &SessionFile) {
        if let Err(e) = write_atomically(&self.path, data) {
            eprintln!(
                "warning: cannot save the session {}: {e}",
                self.path.display()
            );
        }
    }
}

fn write_atomically(path: &Path, data: &SessionFile) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
    }
    let text = serde_json::to_vec_pretty(data).map_err(std::io::Error::other)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    let tmp = dir.join(format!(
        ".{file_name}.{}-{}.tmp",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// RFC 6265 §5.1.3, and a host-only cookie for its host alone.
fn domain_matches(host: &str, c: &Cookie) -> bool {
    host == c.domain
        || (!c.host_only
            && host.ends_with(&c.domain)
            && host[..host.len() - c.domain.len()].ends_with('.'))
}

/// RFC 6265 §5.1.4.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// Parses one `Set-Cookie` value of a response from `url`; `None` for a cookie a client must
/// ignore (no name, a domain the host is not in).
fn parse_set_cookie(v: &str, url: &Url) -> Option<Cookie> {
    let host = url.host_str()?.to_ascii_lowercase();
    let mut parts = v.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    let mut secure = false;
    for a in parts {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        let k = k.trim().to_ascii_lowercase();
        if k == "secure" {
            secure = true;
        } else {
            attrs.insert(k, v.trim().to_owned());
        }
    }
    let now = SystemTime::now();
    // Max-Age wins over Expires; a date that cannot be read or lies in the past ends the cookie
    let expires = match (attrs.get("max-age"), attrs.get("expires")) {
        (Some(m), _) if m.parse::<i64>().is_ok() => {
            let secs = m.parse::<i64>().unwrap_or(0);
            Some(if secs <= 0 {
                0
            } else {
                unix(now) + secs.unsigned_abs()
            })
        }
        (_, Some(e)) => Some(
            engine::retry::parse_retry_after(e, now)
                .filter(|_| !e.bytes().all(|b| b.is_ascii_digit()))
                .map_or(0, |d| unix(now) + d.as_secs().max(1)),
        ),
        _ => None,
    };
    let (domain, host_only) = match attrs.get("domain").map(|d| d.trim_start_matches('.')) {
        Some(d) if !d.is_empty() => {
            let d = d.to_ascii_lowercase();
            let ok =
                host == d || (host.ends_with(&d) && host[..host.len() - d.len()].ends_with('.'));
            if !ok {
                return None;
            }
            (d, false)
        }
        _ => (host, true),
    };
    let path = match attrs.get("path") {
        Some(p) if p.starts_with('/') => p.clone(),
        _ => {
            // the default path: the request path up to its last `/`
            let p = url.path();
            match p.rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => p[..i].to_owned(),
            }
        }
    };
    Some(Cookie {
        name: name.to_owned(),
        value: value.trim().to_owned(),
        domain,
        host_only,
        path,
        secure,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn cookies_go_back_to_their_host_and_path_only() {
        let u = url("http://api.example/v1/login");
        let c = parse_set_cookie("sid=abc; Path=/v1; HttpOnly", &u).unwrap();
        assert_eq!((c.domain.as_str(), c.path.as_str()), ("api.example", "/v1"));
        assert!(c.host_only && c.expires.is_none());
        assert!(domain_matches("api.example", &c));
        assert!(!domain_matches("x.api.example", &c));
        assert!(path_matches("/v1/servers", &c.path));
        assert!(!path_matches("/v10", &c.path));
        let wide = parse_set_cookie("a=b; Domain=.example", &u).unwrap();
        assert!(domain_matches("other.example", &wide) && !wide.host_only);
        assert!(parse_set_cookie("a=b; Domain=evil.test", &u).is_none());
        let gone = parse_set_cookie("a=; Max-Age=0", &u).unwrap();
        assert_eq!(gone.expires, Some(0));
        let old = parse_set_cookie("a=b; Expires=Thu, 01 Jan 1970 00:00:01 GMT", &u).unwrap();
        assert_eq!(old.expires, Some(0));
        let default_path = parse_set_cookie("a=b", &u).unwrap();
        assert_eq!(default_path.path, "/v1");
    }

    #[test]
    fn a_session_name_is_a_file_name() {
        let u = url("http://127.0.0.1:8080/x");
        for bad in ["", "..", ".hidden", "a b"] {
            assert!(session_path(bad, None, &u).is_err(), "{bad}");
        }
        let p = session_path("ops", None, &u).unwrap();
        assert!(
            p.ends_with("opskit/sessions/127.0.0.1_8080/ops.json"),
            "{p:?}"
        );
        let p = session_path("ops", Some("inv"), &u).unwrap();
        assert!(p.ends_with("opskit/sessions/profile-inv/ops.json"), "{p:?}");
        assert_eq!(
            session_path("./s.json", None, &u).unwrap(),
            PathBuf::from("./s.json")
        );
    }
}
