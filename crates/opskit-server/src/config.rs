//! Server settings (the binary fills them from flags, `OPSKIT_*` env vars and a config file).

use std::net::SocketAddr;
use std::time::Duration;

use opskit_notify::signing::WebhookSecret;
use secrecy::SecretString;

/// Everything `opskit serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// `sqlite://FILE` or `postgres://…`.
    pub database_url: String,
    /// Origins allowed by CORS (exact matches, e.g. `https://ops.example.com`); none by default.
    pub cors_origins: Vec<String>,
    /// Requests per minute per principal (API key, user, or IP when anonymous); 0 turns it off.
    pub rate_limit_per_minute: u32,
    /// Login attempts per minute per client IP; 0 turns it off.
    pub login_rate_limit_per_minute: u32,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Accept HTTP Basic credentials.
    pub basic_auth: bool,
    /// JWT signing secret; generated once and kept in the database when not given.
    pub jwt_secret: Option<SecretString>,
    /// Password for the `admin` user created on first start; generated when not given.
    pub admin_password: Option<SecretString>,
    /// Standard Webhooks secrets (`whsec_…`) accepted on `POST /api/v1/events`; when empty,
    /// that endpoint takes unsigned events from an operator or admin instead.
    pub events_secrets: Vec<WebhookSecret>,
    /// How far a signed event's `webhook-timestamp` may be from now.
    pub events_tolerance: Duration,
    /// Cache rendered server responses in memory (emptied on every write by this process).
    /// Only safe when this process is the only writer: `None` means on for SQLite, off for
    /// PostgreSQL (where several replicas may write).
    pub server_cache: Option<bool>,
    /// How long a verified access token is trusted before its user is looked up again (a
    /// removed user is refused, a changed role applies, within this time).
    pub user_recheck: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://opskit.db".into(),
            cors_origins: Vec::new(),
            rate_limit_per_minute: 600,
            login_rate_limit_per_minute: 10,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            basic_auth: true,
            jwt_secret: None,
            admin_password: None,
            events_secrets: Vec::new(),
            events_tolerance: opskit_notify::signing::DEFAULT_TOLERANCE,
            server_cache: None,
            user_recheck: Duration::from_secs(10),
        }
    }
}
