//! Auth providers: Basic, Bearer, API key, OAuth2 client credentials, access + refresh token.
//!
//! Tokens are fetched lazily, cached until expiry minus a skew, and refreshed exactly once
//! when many concurrent requests are refused with 401 at the same time (single flight).

use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, TimeoutPhase};
use crate::login::{self, Issued, LoginAuth, TokenEvent, TokenSet, TokenSink};
use crate::secret::{Secret, fingerprint};

/// Where an API key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyLocation {
    /// In a request header.
    Header,
    /// In a query parameter.
    Query,
}

/// How the OAuth2 client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// HTTP Basic with client id and secret (`client_secret_basic`, the default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Body,
}

/// OAuth2 client-credentials grant (RFC 6749 §4.4).
#[derive(Debug, Clone)]
pub struct OAuth2ClientCredentials {
    /// Token endpoint URL.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Requested scope, space-separated.
    pub scope: Option<String>,
    /// Optional `audience` parameter (Auth0 and others).
    pub audience: Option<String>,
    /// How the client authenticates.
    pub client_auth: ClientAuthMethod,
    /// Refresh this long before the token expires (default 30 s).
    pub expiry_skew: Duration,
}

impl OAuth2ClientCredentials {
    /// A client-credentials provider with default skew and Basic client auth.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        OAuth2ClientCredentials {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            scope: None,
            audience: None,
            client_auth: ClientAuthMethod::Basic,
            expiry_skew: Duration::from_secs(30),
        }
    }
    /// Set the scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// An access token with a refresh token: on 401 the refresh token is POSTed
/// (`grant_type=refresh_token`, form-encoded) to `refresh_url` and the request replayed once.
#[derive(Debug, Clone)]
pub struct RefreshTokenAuth {
    /// The current access token (`None` = refresh before the first request).
    pub access_token: Option<Secret>,
    /// The refresh token.
    pub refresh_token: Secret,
    /// The refresh endpoint.
    pub refresh_url: String,
    /// Optional client id sent with the refresh.
    pub client_id: Option<String>,
    /// Refresh this long before a known expiry (default 30 s).
    pub expiry_skew: Duration,
    /// Tokens to start from (a saved session); they win over `access_token` and
    /// `refresh_token`, which a rotating server has made stale.
    pub tokens: Option<TokenSet>,
    /// Told about every new token set.
    pub on_tokens: Option<TokenSink>,
}

impl RefreshTokenAuth {
    /// A provider from an access token, a refresh token and the refresh endpoint.
    pub fn new(
        access_token: Option<Secret>,
        refresh_token: Secret,
        refresh_url: impl Into<String>,
    ) -> Self {
        RefreshTokenAuth {
            access_token,
            refresh_token,
            refresh_url: refresh_url.into(),
            client_id: None,
            expiry_skew: Duration::from_secs(30),
            tokens: None,
            on_tokens: None,
        }
    }

    /// Which configured refresh token saved tokens belong to: its source (`env:VAR`), or a
    /// hash of an inline value (never the value).
    pub fn refresh_token_id(&self) -> String {
        match &self.refresh_token {
            Secret::Value(v) => format!("value:{}", fingerprint(v)),
            other => other.source_id(),
        }
    }
}

/// How requests authenticate. `Debug` never shows a secret.
///
/// ```
/// use opskit_http::{Auth, ApiKeyLocation, OAuth2ClientCredentials, Secret};
/// let basic = Auth::Basic { username: "ops".into(), password: Secret::env("OPS_PASSWORD") };
/// let key = Auth::ApiKey {
///     name: "X-API-Key".into(),
///     value: Secret::file("/run/secrets/api-key"),
///     location: ApiKeyLocation::Header,
/// };
/// let oauth = Auth::OAuth2(OAuth2ClientCredentials::new(
///     "https://login.example.com/oauth/token", "my-client", Secret::command("pass show api/secret"),
/// ).scope("read write"));
/// assert!(!format!("{basic:?} {key:?} {oauth:?}").contains("hunter2"));
/// ```
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// A static bearer token.
    Bearer(Secret),
    /// An API key in a header or query parameter.
    ApiKey {
        /// Header or parameter name.
        name: String,
        /// The key.
        value: Secret,
        /// Where it goes.
        location: ApiKeyLocation,
    },
    /// OAuth2 client credentials.
    OAuth2(OAuth2ClientCredentials),
    /// Access + refresh token.
    RefreshToken(RefreshTokenAuth),
    /// Log in with a username and password, refresh with the API's own refresh call.
    Login(Box<LoginAuth>),
}

impl Auth {
    /// Whether a 401 can be cured by refreshing a token.
    pub fn can_refresh(&self) -> bool {
        matches!(
            self,
            Auth::OAuth2(_) | Auth::RefreshToken(_) | Auth::Login(_)
        )
    }

    /// The header or query names that carry this auth's secret (for redaction).
    pub(crate) fn sensitive_names(&self) -> Vec<String> {
        match self {
            Auth::ApiKey { name, .. } => vec![name.clone()],
            _ => Vec::new(),
        }
    }
}

#[derive(Default)]
struct TokenState {
    access: Option<SecretString>,
    expires_at: Option<Instant>,
    refresh: Option<SecretString>,
    generation: u64,
    /// How many times a token was fetched or refreshed.
    fetches: u64,
    /// `login`: when the access token expires (wall clock, for a saved session).
    expires_wall: Option<SystemTime>,
    /// `login`: the generation whose token a login of this process gave (0: none).
    login_generation: u64,
    /// `login`: the saved tokens were taken.
    loaded: bool,
}

/// What a request attaches for auth.
pub(crate) struct Credential {
    pub header: Option<(http::HeaderName, http::HeaderValue)>,
    pub query: Option<(String, SecretString)>,
    /// The token generation this credential belongs to (for single-flight refresh).
    pub generation: u64,
}

/// The live auth state of a client.
pub(crate) struct AuthState {
    auth: Auth,
    state: Mutex<TokenState>,
    /// Resolved static secrets (Basic/Bearer/ApiKey).
    static_secret: tokio::sync::OnceCell<SecretString>,
    http: reqwest::Client,
    timeout: Duration,
}

impl AuthState {
    pub(crate) fn new(auth: Auth, http: reqwest::Client, timeout: Duration) -> Self {
        AuthState {
            auth,
            state: Mutex::new(TokenState::default()),
            static_secret: tokio::sync::OnceCell::new(),
            http,
            timeout,
        }
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// How many times a token was fetched or refreshed so far.
    pub(crate) async fn token_fetches(&self) -> u64 {
        self.state.lock().await.fetches
    }

    async fn static_secret(&self, s: &Secret) -> Result<SecretString, Error> {
        self.static_secret
            .get_or_try_init(|| s.resolve())
            .await
            .cloned()
    }

    /// A stable identity of the credential, for cache keys. Never the secret itself.
    pub(crate) async fn identity(&self) -> Result<String, Error> {
        Ok(match &self.auth {
            Auth::None => "anon".into(),
            Auth::Basic { username, password } => {
                format!(
                    "basic:{username}:{}",
                    fingerprint(&self.static_secret(password).await?)
                )
            }
            Auth::Bearer(s) => format!("bearer:{}", fingerprint(&self.static_secret(s).await?)),
            Auth::ApiKey { name, value, .. } => {
                format!(
                    "apikey:{name}:{}",
                    fingerprint(&self.static_secret(value).await?)
                )
            }
            Auth::OAuth2(o) => format!(
                "oauth2:{}:{}:{}",
                o.token_url,
                o.client_id,
                o.scope.clone().unwrap_or_default()
            ),
            Auth::RefreshToken(r) => {
                format!("refresh:{}:{}", r.refresh_url, r.refresh_token.source_id())
            }
            Auth::Login(l) => format!("login:{}:{}", l.login_url, l.username.source_id()),
        })
    }

    /// The credential for the next attempt.
    pub(crate) async fn credential(&self) -> Result<Credential, Error> {
        let none = Credential {
            header: None,
            query: None,
            generation: 0,
        };
        match &self.auth {
            Auth::None => Ok(none),
            Auth::Basic { username, password } => {
                let pw = self.static_secret(password).await?;
                let raw = format!("{username}:{}", pw.expose_secret());
                let value = format!("Basic {}", base64_encode(raw.as_bytes()));
                Ok(Credential {
                    header: Some((http::header::AUTHORIZATION, sensitive_value(&value)?)),
                    ..none
                })
            }
            Auth::Bearer(s) => {
                let tok = self.static_secret(s).await?;
                Ok(Credential {
                    header: Some((
                        http::header::AUTHORIZATION,
                        sensitive_value(&format!("Bearer {}", tok.expose_secret()))?,
                    )),
                    ..none
                })
            }
            Auth::ApiKey {
                name,
                value,
                location,
            } => {
                let key = self.static_secret(value).await?;
                match location {
                    ApiKeyLocation::Header => {
                        let hn = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            Error::config(format!(
                                "API key header name {name:?} is not a valid header name"
                            ))
                        })?;
                        Ok(Credential {
                            header: Some((hn, sensitive_value(key.expose_secret())?)),
                            ..none
                        })
                    }
                    ApiKeyLocation::Query => Ok(Credential {
                        query: Some((name.clone(), key)),
                        ..none
                    }),
                }
            }
            Auth::Login(l) => {
                let mut st = self.state.lock().await;
                if !st.loaded {
                    st.loaded = true;
                    if let Some(t) = &l.tokens {
                        load_tokens(l, t, &mut st);
                    }
                }
                let fresh = match (&st.access, st.expires_at) {
                    (Some(_), None) => true,
                    (Some(_), Some(renew_at)) => Instant::now() < renew_at,
                    (None, _) => false,
                };
                if !fresh {
                    self.renew(l, &mut st).await?;
                }
                let tok = st
                    .access
                    .clone()
                    .ok_or_else(|| Error::auth("no access token after the login"))?;
                Ok(Credential {
                    header: Some((
                        http::header::AUTHORIZATION,
                        sensitive_value(&format!("Bearer {}", tok.expose_secret()))?,
                    )),
                    query: None,
                    generation: st.generation,
                })
            }
            Auth::OAuth2(_) | Auth::RefreshToken(_) => {
                let mut st = self.state.lock().await;
                if let Auth::RefreshToken(r) = &self.auth
                    && !st.loaded
                {
                    st.loaded = true;
                    if let Some(t) = &r.tokens {
                        st.access = t.access_token.clone();
                        st.refresh = t.refresh_token.clone();
                        st.expires_wall = t.expires_at;
                        st.expires_at = t.expires_at.map(|at| {
                            Instant::now()
                                + at.duration_since(SystemTime::now())
                                    .unwrap_or(Duration::ZERO)
                        });
                        if st.access.is_some() {
                            st.generation += 1;
                        }
                    }
                }
                let skew = match &self.auth {
                    Auth::OAuth2(o) => o.expiry_skew,
                    Auth::RefreshToken(r) => r.expiry_skew,
                    _ => Duration::ZERO,
                };
                let fresh = match (&st.access, st.expires_at) {
                    (Some(_), None) => true,
                    (Some(_), Some(at)) => Instant::now() + skew < at,
                    (None, _) => false,
                };
                if !fresh {
                    let first_static = match &self.auth {
                        Auth::RefreshToken(r) if st.generation == 0 && st.access.is_none() => {
                            r.access_token.clone()
                        }
                        _ => None,
                    };
                    if let Some(initial) = first_static {
                        st.access = Some(initial.resolve().await?);
                        st.expires_at = None;
                        st.generation += 1;
                    } else {
                        self.fetch(&mut st).await?;
                    }
                }
                let tok = st
                    .access
                    .clone()
                    .ok_or_else(|| Error::auth("no access token after refresh"))?;
                Ok(Credential {
                    header: Some((
                        http::header::AUTHORIZATION,
                        sensitive_value(&format!("Bearer {}", tok.expose_secret()))?,
                    )),
                    query: None,
                    generation: st.generation,
                })
            }
        }
    }

    /// A request with credential generation `generation` got 401. Refresh unless another
    /// task already did since (single flight). Returns `false` if this auth cannot refresh.
    pub(crate) async fn on_unauthorized(&self, generation: u64) -> Result<bool, Error> {
        if !self.auth.can_refresh() {
            return Ok(false);
        }
        let mut st = self.state.lock().await;
        if st.generation != generation {
            // another request renewed the token meanwhile
            return Ok(true);
        }
        if let Auth::Login(l) = &self.auth {
            if st.login_generation != 0 && st.login_generation == generation {
                // a second login would be refused the same way: no loop
                return Err(Error::auth(format!(
                    "the API answered 401 to the access token the login at {} just issued; \
                     check the token pointer ({}) and that this API takes that token",
                    l.login_url, l.token_pointer
                )));
            }
            self.renew(l, &mut st).await?;
        } else {
            self.fetch(&mut st).await?;
        }
        Ok(true)
    }

    /// `login`: refresh when there is a refresh token and URL, else (or when that fails) log
    /// in; at most one login (caller holds the lock).
    async fn renew(&self, l: &LoginAuth, st: &mut TokenState) -> Result<(), Error> {
        if let (Some(url), Some(rt)) = (&l.refresh_url, st.refresh.clone()) {
            match login::refresh(l, url, &rt, &self.http, self.timeout).await {
                Ok(issued) => {
                    self.take(l, st, issued, TokenEvent::Refresh);
                    return Ok(());
                }
                Err(e) => tracing::info!(error = %e, "the refresh failed; logging in again"),
            }
        }
        let issued = login::login(l, &self.http, self.timeout).await?;
        self.take(l, st, issued, TokenEvent::Login);
        st.login_generation = st.generation;
        Ok(())
    }

    /// `login`: keep what a login or refresh issued, and tell the sink.
    fn take(&self, l: &LoginAuth, st: &mut TokenState, issued: Issued, event: TokenEvent) {
        st.access = Some(issued.access);
        match (event, issued.refresh) {
            (_, Some(r)) => st.refresh = Some(r),
            // a login without a refresh token ends the old one; a refresh that does not
            // rotate keeps it
            (TokenEvent::Login, None) => st.refresh = None,
            (TokenEvent::Refresh, None) => {}
        }
        st.expires_wall = issued.lifetime.map(|d| SystemTime::now() + d);
        st.expires_at = issued
            .lifetime
            .map(|d| Instant::now() + d.saturating_sub(l.skew_for(d)));
        st.generation += 1;
        st.fetches += 1;
        if let Some(sink) = &l.on_tokens {
            sink.tell(
                event,
                &TokenSet {
                    access_token: st.access.clone(),
                    refresh_token: st.refresh.clone(),
                    expires_at: st.expires_wall,
                },
            );
        }
    }

    /// Fetch a new token (caller holds the lock).
    async fn fetch(&self, st: &mut TokenState) -> Result<(), Error> {
        let (url, req) = match &self.auth {
            Auth::OAuth2(o) => {
                let secret = o.client_secret.resolve().await?;
                let mut form: Vec<(&str, String)> =
                    vec![("grant_type", "client_credentials".into())];
                if let Some(s) = &o.scope {
                    form.push(("scope", s.clone()));
                }
                if let Some(a) = &o.audience {
                    form.push(("audience", a.clone()));
                }
                let mut req = self.http.post(&o.token_url);
                match o.client_auth {
                    ClientAuthMethod::Basic => {
                        req = req.basic_auth(&o.client_id, Some(secret.expose_secret()));
                    }
                    ClientAuthMethod::Body => {
                        form.push(("client_id", o.client_id.clone()));
                        form.push(("client_secret", secret.expose_secret().to_string()));
                    }
                }
                (o.token_url.clone(), req.form(&form))
            }
            Auth::RefreshToken(r) => {
                let refresh = match &st.refresh {
                    Some(t) => t.clone(),
                    None => r.refresh_token.resolve().await?,
                };
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh.expose_secret().to_string()),
                ];
                if let Some(c) = &r.client_id {
                    form.push(("client_id", c.clone()));
                }
                (
                    r.refresh_url.clone(),
                    self.http.post(&r.refresh_url).form(&form),
                )
            }
            _ => return Ok(()),
        };
        tracing::debug!(token_url = %url, "fetching access token");
        let resp = tokio::time::timeout(
            self.timeout,
            req.header("Accept", "application/json").send(),
        )
        .await
        .map_err(|_| Error::Timeout {
            phase: TimeoutPhase::Auth,
            after: self.timeout,
            url: url.clone(),
        })?
        .map_err(|e| Error::auth(format!("token endpoint {url} unreachable: {e}")))?;
        let status = resp.status();
        let body = tokio::time::timeout(self.timeout, resp.bytes())
            .await
            .map_err(|_| Error::Timeout {
                phase: TimeoutPhase::Auth,
                after: self.timeout,
                url: url.clone(),
            })?
            .map_err(|e| Error::auth(format!("token endpoint {url}: {e}")))?;
        if !status.is_success() {
            let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(Error::auth(format!(
                "token endpoint {url} answered {status}: {excerpt}"
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::auth(format!("token endpoint {url} sent invalid JSON: {e}")))?;
        let access = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .ok_or_else(|| Error::auth(format!("token endpoint {url} sent no access_token")))?;
        st.access = Some(SecretString::from(access.to_string()));
        st.expires_at = v
            .get("expires_in")
            .and_then(|e| {
                e.as_u64()
                    .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
            })
            .map(|secs| Instant::now() + Duration::from_secs(secs));
        if let Some(r) = v.get("refresh_token").and_then(|t| t.as_str()) {
            st.refresh = Some(SecretString::from(r.to_string()));
        }
        st.expires_wall = st
            .expires_at
            .map(|at| SystemTime::now() + at.saturating_duration_since(Instant::now()));
        st.generation += 1;
        st.fetches += 1;
        if let Auth::RefreshToken(RefreshTokenAuth {
            on_tokens: Some(sink),
            ..
        }) = &self.auth
        {
            sink.tell(
                TokenEvent::Refresh,
                &TokenSet {
                    access_token: st.access.clone(),
                    refresh_token: st.refresh.clone(),
                    expires_at: st.expires_wall,
                },
            );
        }
        Ok(())
    }
}

/// `login`: start from saved tokens; an expiry in the past means renew first.
fn load_tokens(l: &LoginAuth, t: &TokenSet, st: &mut TokenState) {
    st.access = t.access_token.clone();
    st.refresh = t.refresh_token.clone();
    st.expires_wall = t.expires_at;
    st.expires_at = t.expires_at.map(|at| {
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Instant::now() + left.saturating_sub(l.skew_for(left))
    });
}

fn sensitive_value(v: &str) -> Result<http::HeaderValue, Error> {
    let mut hv = http::HeaderValue::from_str(v)
        .map_err(|_| Error::auth("credential contains characters not allowed in a header"))?;
    hv.set_sensitive(true);
    Ok(hv)
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}
