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
    /// Failed password or API-key checks allowed per minute, per client address and per
    /// username, before further attempts are refused unchecked (see [`crate::throttle`]); 0
    /// turns the throttle off.
    pub login_rate_limit_per_minute: u32,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time a request may take: 408 when its body has not arrived by then, 503 when
    /// the server itself was too slow.
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request's headers (HTTP/1), counted from the
    /// first byte or, on a kept-alive connection, from the end of the previous response.
    pub header_read_timeout: Duration,
    /// A connection on which nothing moves (no bytes either way, no request in progress) for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; past that a new connection gets a 503 and is closed.
    pub max_connections: usize,
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
    /// Cache rendered server responses in memory (emptied on every write; on PostgreSQL also on
    /// every other replica's write, through LISTEN/NOTIFY, and off while that connection is
    /// down). `None` means on.
    pub server_cache: Option<bool>,
    /// How long a verified access token is trusted before its user is looked up again (a
    /// removed user is refused, a changed role applies, within this time).
    pub user_recheck: Duration,
    /// The monitor engine inside the server (off by default).
    pub monitor: MonitorSettings,
    /// Who may see `GET /status` and the monitor badges (`--status-page`).
    pub status_page: StatusPageAccess,
}

/// `--status-page public|private`: who may see the status page and the badges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusPageAccess {
    /// Any credential the API takes (a browser gets a Basic-auth prompt; a viewer is enough).
    #[default]
    Private,
    /// Anyone who can reach the server (for a public status page and README badges).
    Public,
}

/// `opskit serve --monitor` / `--monitor-config FILE`: the monitor engine in the same process,
/// on the server's database.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Run the engine (also implied by `config_path`).
    pub enabled: bool,
    /// A `monitor.toml` whose monitors (and destinations, settings) run besides the stored
    /// ones; reloaded on SIGHUP or when it changes.
    pub config_path: Option<std::path::PathBuf>,
    /// The leader lease among replicas sharing the database (1 s to 1 h).
    pub lease: Duration,
    /// How often stored and inventory monitors are re-read.
    pub refresh: Duration,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            config_path: None,
            lease: Duration::from_secs(15),
            refresh: Duration::from_secs(10),
        }
    }
}

impl MonitorSettings {
    /// Is the engine to run?
    pub fn on(&self) -> bool {
        self.enabled || self.config_path.is_some()
    }
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
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            basic_auth: true,
            jwt_secret: None,
            admin_password: None,
            events_secrets: Vec::new(),
            events_tolerance: opskit_notify::signing::DEFAULT_TOLERANCE,
            server_cache: None,
            user_recheck: Duration::from_secs(10),
            monitor: MonitorSettings::default(),
            status_page: StatusPageAccess::Private,
        }
    }
}

const DAY: u64 = 86_400;

impl ServerConfig {
    /// Checks every duration and size before anything starts, so that no setting can make a
    /// request fail later (e.g. a refresh-token lifetime that overflows a date).
    pub fn validate(&self) -> Result<(), crate::Error> {
        let secs = Duration::from_secs;
        let checks: [(&str, Duration, Duration, Duration); 7] = [
            (
                "--request-timeout",
                self.request_timeout,
                Duration::from_millis(1),
                secs(3600),
            ),
            (
                "--header-timeout",
                self.header_read_timeout,
                Duration::from_millis(1),
                secs(3600),
            ),
            (
                "--idle-timeout",
                self.idle_timeout,
                Duration::from_millis(1),
                secs(DAY),
            ),
            (
                "--access-token-ttl",
                self.access_token_ttl,
                secs(1),
                secs(DAY),
            ),
            (
                "--refresh-token-ttl",
                self.refresh_token_ttl,
                secs(1),
                secs(366 * DAY),
            ),
            (
                "--events-tolerance",
                self.events_tolerance,
                secs(1),
                secs(DAY),
            ),
            (
                "user re-check interval",
                self.user_recheck,
                Duration::ZERO,
                secs(3600),
            ),
        ];
        for (name, value, min, max) in checks {
            if value < min || value > max {
                return Err(crate::Error::Invalid(format!(
                    "{name} must be between {} and {} (got {} s)",
                    human(min),
                    human(max),
                    value.as_secs_f64()
                )));
            }
        }
        if self.monitor.on() && (self.monitor.lease < secs(1) || self.monitor.lease > secs(3600)) {
            return Err(crate::Error::Invalid(format!(
                "--monitor-lease must be between 1 s and 3600 s (got {} s)",
                self.monitor.lease.as_secs_f64()
            )));
        }
        if self.max_connections == 0 {
            return Err(crate::Error::Invalid(
                "--max-connections must be at least 1".into(),
            ));
        }
        if self.body_limit_bytes == 0 {
            return Err(crate::Error::Invalid(
                "--body-limit must be at least 1 byte".into(),
            ));
        }
        Ok(())
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if s.is_multiple_of(DAY) {
        format!("{} days ({s} s)", s / DAY)
    } else {
        format!("{s} s")
    }
}
