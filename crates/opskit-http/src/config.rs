//! The configuration of a [`crate::Client`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Auth;
use crate::cache::CacheConfig;
use crate::observe::Observer;
use crate::ratelimit::RateLimit;
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// The `User-Agent` sent unless configured otherwise: `opskit/<version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("opskit/", env!("CARGO_PKG_VERSION"));

/// The default cap of a buffered response body: 256 MiB.
pub const DEFAULT_MAX_BODY: u64 = 256 * 1024 * 1024;

/// Deadlines. All are always on.
///
/// ```
/// use std::time::Duration;
/// use opskit_http::Timeouts;
/// let t = Timeouts::default();
/// assert_eq!(t.connect, Duration::from_secs(10));
/// assert_eq!(t.request, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the connection, TLS handshake included (default 10 s).
    pub connect: Duration,
    /// One attempt: sending, waiting for headers and reading a buffered body (default 30 s).
    pub request: Duration,
    /// The longest silence allowed between two chunks of a streamed body or download
    /// (default 30 s). Streamed bodies are not bound by `request`.
    pub read_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            read_idle: Duration::from_secs(30),
        }
    }
}

/// The lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 (default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// TLS settings (rustls; no OpenSSL).
///
/// ```
/// use opskit_http::{TlsConfig, TlsVersion};
/// let tls = TlsConfig {
///     ca_bundle: Some("/etc/ssl/corp-ca.pem".into()),   // like requests' verify="/path"
///     min_version: TlsVersion::Tls13,
///     ..TlsConfig::default()
/// };
/// assert!(tls.client_cert.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM bundle) trusted in addition to the system roots.
    pub ca_bundle: Option<PathBuf>,
    /// Trust only `ca_bundle`, not the system roots.
    pub ca_bundle_only: bool,
    /// Client certificate chain (PEM), for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Minimum TLS version.
    pub min_version: TlsVersion,
    /// Accept any certificate. Dangerous; for debugging only.
    pub danger_accept_invalid_certs: bool,
}

/// An HTTP(S) proxy. `Debug` shows neither the password nor one written in the URL.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Proxy URL, e.g. `http://proxy.corp:3128`.
    pub url: String,
    /// Optional basic-auth user for the proxy.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<Secret>,
    /// Hosts that bypass the proxy (comma list like `NO_PROXY`).
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &crate::proxy::redact_userinfo(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// Everything a [`crate::Client`] needs. `Debug` redacts secrets.
///
/// ```
/// use opskit_http::{ClientConfig, Auth, Secret, RetryPolicy};
/// let cfg = ClientConfig::new("https://api.example.com/v1/")
///     .header("Accept", "application/json")
///     .auth(Auth::Bearer(Secret::env("API_TOKEN")))
///     .retry(RetryPolicy::default().total(5));
/// assert!(format!("{cfg:?}").contains("Bearer"));
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL that relative request paths are joined to.
    pub base_url: Option<String>,
    /// Headers sent with every request (values of sensitive names are redacted in `Debug`).
    pub default_headers: Vec<(String, String)>,
    /// `User-Agent` (default `opskit/<version>`).
    pub user_agent: String,
    /// Proxy; `None` = use `HTTP(S)_PROXY` from the environment when `system_proxy` is on.
    pub proxy: Option<ProxyConfig>,
    /// Honour `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` when no explicit proxy is set.
    pub system_proxy: bool,
    /// TLS options.
    pub tls: TlsConfig,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Client-side rate limiting: an optional per-host quota, and the server's
    /// `RateLimit-*`/`X-RateLimit-*` headers (honoured by default).
    pub rate_limit: RateLimit,
    /// Authentication.
    pub auth: Auth,
    /// Response cache; `None` = off.
    pub cache: Option<CacheConfig>,
    /// Maximum redirects followed (0 = none; default 10).
    pub max_redirects: usize,
    /// Header names that carry a secret besides the built-in list (`Authorization`, `Cookie`,
    /// `X-Api-Key`, names with `token`/`secret`/`password`…) and the API-key header: redacted
    /// everywhere and dropped on a redirect to another origin.
    pub secret_headers: Vec<String>,
    /// Query parameter names that carry a secret besides a query API key: redacted everywhere
    /// and dropped on a redirect to another origin.
    pub secret_query: Vec<String>,
    /// Most bytes a buffered body ([`crate::Response::bytes`], `text`, `json`) may have; a
    /// larger body is [`crate::Error::BodyTooLarge`]. Streamed bodies are not capped.
    /// Default [`DEFAULT_MAX_BODY`].
    pub max_body: u64,
    /// The URL path itself is a secret (Slack and Teams webhook URLs): logs, observer events
    /// and errors show only `scheme://host/<redacted>`. Default off.
    pub secret_path: bool,
    /// Observer of every attempt (for `--verbose`), headers already redacted.
    pub observer: Option<Arc<dyn Observer>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: None,
            default_headers: Vec::new(),
            user_agent: DEFAULT_USER_AGENT.to_string(),
            proxy: None,
            system_proxy: false,
            tls: TlsConfig::default(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            rate_limit: RateLimit::default(),
            auth: Auth::None,
            cache: None,
            max_redirects: 10,
            secret_headers: Vec::new(),
            secret_query: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            secret_path: false,
            observer: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(String, String)> = self
            .default_headers
            .iter()
            .map(|(k, v)| {
                let shown = if crate::observe::is_sensitive_header(k) {
                    crate::observe::REDACTED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect();
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("default_headers", &headers)
            .field("user_agent", &self.user_agent)
            .field("proxy", &self.proxy)
            .field("system_proxy", &self.system_proxy)
            .field("tls", &self.tls)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("rate_limit", &self.rate_limit)
            .field("auth", &self.auth)
            .field("cache", &self.cache)
            .field("max_redirects", &self.max_redirects)
            .field("secret_headers", &self.secret_headers)
            .field("secret_query", &self.secret_query)
            .field("max_body", &self.max_body)
            .field("secret_path", &self.secret_path)
            .field("observer", &self.observer.as_ref().map(|_| "<observer>"))
            .finish()
    }
}

impl ClientConfig {
    /// A default configuration with a base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: Some(base_url.into()),
            ..ClientConfig::default()
        }
    }
    /// Add a default header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.default_headers.push((name.into(), value.into()));
        self
    }
    /// Set the authentication.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    /// Set the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Set the timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
    /// Set the client-side rate limit.
    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }
    /// Turn the response cache on.
    pub fn cache(mut self, cache: CacheConfig) -> Self {
        self.cache = Some(cache);
        self
    }
    /// Set TLS options.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }
    /// Set a proxy.
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = Some(proxy);
        self
    }
    /// Declare a header that carries a secret (see [`ClientConfig::secret_headers`]).
    pub fn secret_header(mut self, name: impl Into<String>) -> Self {
        self.secret_headers.push(name.into());
        self
    }
    /// Declare a query parameter that carries a secret (see [`ClientConfig::secret_query`]).
    pub fn secret_query_param(mut self, name: impl Into<String>) -> Self {
        self.secret_query.push(name.into());
        self
    }
    /// Observe every attempt (see [`Observer`]).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}
