//! The `login` auth kind: POST credentials to a login URL, take the access token from the JSON
//! answer by JSON pointer and send it as a bearer token; when it expires (or the API answers
//! 401) trade the refresh token at the API's own refresh URL, keeping a rotated refresh token;
//! when that fails, log in again — at most once per request.
//!
//! The tokens can start from a saved session ([`LoginAuth::tokens`]) and every new set is handed
//! to a [`TokenSink`], so a caller can keep them between runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::error::{Error, TimeoutPhase};
use crate::secret::Secret;

/// How the login (or refresh) body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginBody {
    /// A JSON object (`{"username": …, "password": …}`), as `opskit serve`'s `/auth/login`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, as the OAuth2 password form of FastAPI's `/token`.
    Form,
}

/// The tokens of a login, as a session keeps them between runs. `Debug` never shows a token.
#[derive(Clone, Default)]
pub struct TokenSet {
    /// The access token sent as `Authorization: Bearer …`.
    pub access_token: Option<SecretString>,
    /// The refresh token (the latest, when the API rotates them).
    pub refresh_token: Option<SecretString>,
    /// When the access token expires, when the API said (`expires_in`).
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |t: &Option<SecretString>| t.as_ref().map(|_| crate::REDACTED);
        f.debug_struct("TokenSet")
            .field("access_token", &shown(&self.access_token))
            .field("refresh_token", &shown(&self.refresh_token))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How a [`TokenSet`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEvent {
    /// A login with the username and password.
    Login,
    /// A refresh with the refresh token.
    Refresh,
}

/// Called with every new token set (after a login or a refresh), e.g. to save a session.
#[derive(Clone)]
pub struct TokenSink(Arc<TokenFn>);

type TokenFn = dyn Fn(TokenEvent, &TokenSet) + Send + Sync;

impl TokenSink {
    /// A sink from a function.
    pub fn new(f: impl Fn(TokenEvent, &TokenSet) + Send + Sync + 'static) -> Self {
        TokenSink(Arc::new(f))
    }

    pub(crate) fn tell(&self, event: TokenEvent, tokens: &TokenSet) {
        (self.0)(event, tokens)
    }
}

impl std::fmt::Debug for TokenSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSink")
    }
}

/// Log in with a username and password; refresh with the API's own refresh call.
///
/// ```
/// use opskit_http::{Auth, LoginAuth, LoginBody, Secret};
/// // opskit serve: JSON login, rotating refresh tokens
/// let mut serve = LoginAuth::new(
///     "https://inventory.example/auth/login",
///     Secret::env("OPS_USER"),
///     Secret::env("OPS_PASSWORD"),
/// );
/// serve.refresh_url = Some("https://inventory.example/auth/refresh".into());
/// // FastAPI's OAuth2 password form: no refresh call, a new login when the token expires
/// let mut fastapi = LoginAuth::new(
///     "https://api.example/token",
///     Secret::value("alice"),
///     Secret::value("hunter2"),
/// );
/// fastapi.body = LoginBody::Form;
/// let auth = Auth::Login(Box::new(serve));
/// assert!(!format!("{auth:?} {fastapi:?}").contains("hunter2"));
/// ```
#[derive(Debug, Clone)]
pub struct LoginAuth {
    /// Where the credentials are POSTed.
    pub login_url: String,
    /// The user name (a secret source, so it can come from a file or a command too).
    pub username: Secret,
    /// The password.
    pub password: Secret,
    /// How the login body is encoded (JSON by default).
    pub body: LoginBody,
    /// The body field of the user name (default `username`).
    pub username_field: String,
    /// The body field of the password (default `password`).
    pub password_field: String,
    /// More fields sent with the login (e.g. `grant_type=password`).
    pub extra_fields: Vec<(String, String)>,
    /// JSON pointer to the access token in the login and refresh answers (default
    /// `/access_token`).
    pub token_pointer: String,
    /// JSON pointer to the lifetime in seconds (default `/expires_in`); without it the token is
    /// used until the API answers 401.
    pub expires_pointer: String,
    /// The refresh URL; without one an expired token means a new login.
    pub refresh_url: Option<String>,
    /// JSON pointer to the refresh token in the login and refresh answers (default
    /// `/refresh_token`).
    pub refresh_token_pointer: String,
    /// The body field the refresh token is sent in (default `refresh_token`).
    pub refresh_field: String,
    /// How the refresh body is encoded (JSON by default).
    pub refresh_body: LoginBody,
    /// Renew this long before a known expiry (default 30 s, at most half the token's life).
    pub expiry_skew: Duration,
    /// Tokens to start from (a saved session).
    pub tokens: Option<TokenSet>,
    /// Told about every new token set.
    pub on_tokens: Option<TokenSink>,
}

impl LoginAuth {
    /// A JSON login at `login_url` with the default field names and pointers, no refresh URL.
    pub fn new(login_url: impl Into<String>, username: Secret, password: Secret) -> Self {
        LoginAuth {
            login_url: login_url.into(),
            username,
            password,
            body: LoginBody::Json,
            username_field: "username".into(),
            password_field: "password".into(),
            extra_fields: Vec::new(),
            token_pointer: "/access_token".into(),
            expires_pointer: "/expires_in".into(),
            refresh_url: None,
            refresh_token_pointer: "/refresh_token".into(),
            refresh_field: "refresh_token".into(),
            refresh_body: LoginBody::Json,
            expiry_skew: Duration::from_secs(30),
            tokens: None,
            on_tokens: None,
        }
    }

    /// Whose tokens these are, to tell saved tokens apart: the username's source
    /// (`env:OPS_USER`), or a hash of an inline username (never the value).
    pub fn username_id(&self) -> String {
        match &self.username {
            Secret::Value(v) => format!("value:{}", crate::secret::fingerprint(v)),
            other => other.source_id(),
        }
    }

    /// How long before `lifetime` runs out the token is renewed.
    pub(crate) fn skew_for(&self, lifetime: Duration) -> Duration {
        self.expiry_skew.min(lifetime / 2)
    }
}

/// What a login or refresh answered: the tokens found by the pointers.
pub(crate) struct Issued {
    pub access: SecretString,
    pub refresh: Option<SecretString>,
    pub lifetime: Option<Duration>,
}

/// POSTs the credentials to the login URL.
pub(crate) async fn login(
    l: &LoginAuth,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<Issued, Error> {
    let user = l.username.resolve().await?;
    let pass = l.password.resolve().await?;
    let mut fields: Vec<(String, String)> = l.extra_fields.clone();
    fields.push((l.username_field.clone(), user.expose_secret().to_owned()));
    fields.push((l.password_field.clone(), pass.expose_secret().to_owned()));
    let req = with_body(http.post(&l.login_url), l.body, &fields);
    tracing::debug!(login_url = %l.login_url, "logging in");
    let v = call(req, &l.login_url, "login", timeout, &[&pass]).await?;
    issued(l, &v, &l.login_url, "login")
}

/// Trades `refresh` at the refresh URL.
pub(crate) async fn refresh(
    l: &LoginAuth,
    url: &str,
    refresh: &SecretString,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<Issued, Error> {
    let fields = vec![(l.refresh_field.clone(), refresh.expose_secret().to_owned())];
    let req = with_body(http.post(url), l.refresh_body, &fields);
    tracing::debug!(refresh_url = %url, "refreshing the access token");
    let v = call(req, url, "refresh", timeout, &[refresh]).await?;
    issued(l, &v, url, "refresh")
}

fn with_body(
    req: reqwest::RequestBuilder,
    body: LoginBody,
    fields: &[(String, String)],
) -> reqwest::RequestBuilder {
    match body {
        LoginBody::Json => {
            let map: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            req.json(&Value::Object(map))
        }
        LoginBody::Form => req.form(fields),
    }
}

/// Sends a login or refresh call under `timeout` and returns its JSON answer. A refusal names
/// the status and what the server said, with the secrets sent cut out of it (validation errors
/// of some frameworks echo the input).
async fn call(
    req: reqwest::RequestBuilder,
    url: &str,
    what: &str,
    timeout: Duration,
    sent: &[&SecretString],
) -> Result<Value, Error> {
    let timed_out = || Error::Timeout {
        phase: TimeoutPhase::Auth,
        after: timeout,
        url: url.to_owned(),
    };
    let timeouts = crate::Timeouts {
        request: timeout,
        ..Default::default()
    };
    let resp = tokio::time::timeout(timeout, req.header("Accept", "application/json").send())
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| Error::from_reqwest(e, url, &timeouts))?;
    let status = resp.status();
    let body = tokio::time::timeout(timeout, resp.bytes())
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| Error::from_reqwest(e, url, &timeouts))?;
    if !status.is_success() {
        let mut excerpt = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned();
        for s in sent {
            let s = s.expose_secret();
            if !s.is_empty() {
                excerpt = excerpt.replace(s, crate::REDACTED);
            }
        }
        // the server's words, one line, no control characters
        let excerpt: String = excerpt
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(Error::auth(format!(
            "the {what} at {url} was refused: HTTP {status}{}{excerpt}",
            if excerpt.is_empty() { "" } else { ": " }
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::auth(format!("the {what} at {url} answered invalid JSON: {e}")))
}

fn issued(l: &LoginAuth, v: &Value, url: &str, what: &str) -> Result<Issued, Error> {
    let text = |ptr: &str| -> Option<String> {
        match v.pointer(ptr)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let access = text(&l.token_pointer).ok_or_else(|| {
        Error::auth(format!(
            "the {what} at {url} answered no access token at {} (set token_pointer to where \
             the answer has it)",
            l.token_pointer
        ))
    })?;
    let lifetime = v.pointer(&l.expires_pointer).and_then(|e| {
        e.as_u64()
            .or_else(|| e.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| e.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Duration::from_secs)
    });
    Ok(Issued {
        access: SecretString::from(access),
        refresh: text(&l.refresh_token_pointer).map(SecretString::from),
        lifetime,
    })
}
