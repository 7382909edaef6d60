//! `opskit serve`, `opskit user …`, `opskit apikey …`: the inventory API and its administration.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use opskit_server::model::Role;
use opskit_server::store::Store;
use opskit_server::{Application, ServerConfig, users};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::duration::parse_duration;
use crate::exit::{Failure, code};
use crate::logging::{self, LogFormat};

const DEFAULT_DATABASE: &str = "sqlite://opskit.db";

/// The end of `opskit serve --help`.
const SERVE_EXIT_CODES: &str = "\
One server per SQLite database: a second `opskit serve` on the same file is refused (exit 1),
naming the file (an advisory lock on FILE.serve-lock; `opskit user`, `apikey` and `db init`
keep working). To run two replicas, use PostgreSQL: with --monitor or --monitor-config, one
replica runs the checks and sends the alerts at a time (a leader lease in the database), and
every replica serves the API.

Exit codes:
  0    stopped cleanly (SIGTERM, Ctrl-C)
  1    the database is already served by another opskit serve (SQLite), the address is in use,
       or the monitor engine stopped on an error
  2    usage error: a bad flag, config file or monitor file
  3    the database cannot be reached";

/// `opskit serve` flags. Each can also come from an `OPSKIT_*` env var or the config file
/// (flag > env var > config file > default).
#[derive(Debug, Args)]
#[command(after_help = SERVE_EXIT_CODES)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "OPSKIT_BIND")]
    pub bind: Option<SocketAddr>,
    /// Database: sqlite://FILE (created if missing) or postgres://USER@HOST/DB
    /// [default: sqlite://opskit.db].
    #[arg(long, env = "OPSKIT_DATABASE")]
    pub database: Option<String>,
    /// TOML config file (env OPSKIT_SERVE_CONFIG; OPSKIT_CONFIG is the http profiles file) with any of: bind, database, cors_origins, rate_limit, login_rate_limit,
    /// body_limit, request_timeout, header_timeout, idle_timeout, max_connections,
    /// access_token_ttl, refresh_token_ttl, basic_auth, log_format, events_secrets,
    /// events_tolerance, server_cache, monitor, monitor_config, monitor_lease, monitor_refresh.
    #[arg(long, env = "OPSKIT_SERVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Origin allowed by CORS (repeat, or comma-separate in the env var); none by default.
    #[arg(
        long = "cors-origin",
        env = "OPSKIT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Requests per minute per API key / user (per IP when anonymous); 0 = off [default: 600].
    #[arg(long, env = "OPSKIT_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Failed password or API-key checks per minute, per client address and per username,
    /// before further attempts are refused unchecked (429); 0 = off [default: 10].
    #[arg(long, env = "OPSKIT_LOGIN_RATE_LIMIT")]
    pub login_rate_limit: Option<u32>,
    /// Largest request body in bytes [default: 65536].
    #[arg(long, env = "OPSKIT_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// How long a request may take (30s, 1m, 500ms, …): 408 when its body has not arrived by
    /// then, 503 when the server was too slow [default: 30s].
    #[arg(long, env = "OPSKIT_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// How long a client may take to send a request's headers; slower connections are closed
    /// (slowloris) [default: 10s].
    #[arg(long, env = "OPSKIT_HEADER_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,
    /// How long a connection may stay silent (no bytes, no request in progress) before it is
    /// closed [default: 60s].
    #[arg(long, env = "OPSKIT_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Most connections open at once; past that a new connection gets a 503 and is closed
    /// [default: 1024].
    #[arg(long, env = "OPSKIT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Access token lifetime, 1s to 1d [default: 15m].
    #[arg(long, env = "OPSKIT_ACCESS_TOKEN_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub access_token_ttl: Option<Duration>,
    /// Refresh token lifetime, up to 365d [default: 30d].
    #[arg(long, env = "OPSKIT_REFRESH_TOKEN_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub refresh_token_ttl: Option<Duration>,
    /// Accept HTTP Basic credentials (true/false) [default: true].
    #[arg(long, env = "OPSKIT_BASIC_AUTH")]
    pub basic_auth: Option<bool>,
    /// Log format [default: text].
    #[arg(long, env = "OPSKIT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Standard Webhooks secret (whsec_…) that POST /api/v1/events verifies: env:VAR, file:PATH,
    /// cmd:COMMAND or the value; repeat for key rotation. Without it, events need an operator
    /// or admin credential instead of a signature.
    #[arg(
        long = "events-secret",
        env = "OPSKIT_EVENTS_SECRET",
        value_delimiter = ','
    )]
    pub events_secrets: Vec<String>,
    /// How far a signed event's webhook-timestamp may differ from now [default: 5m].
    #[arg(long, env = "OPSKIT_EVENTS_TOLERANCE", value_name = "DURATION", value_parser = parse_duration)]
    pub events_tolerance: Option<Duration>,
    /// Run the monitor engine in this process, on the server's database, with the monitors
    /// stored through the API and the inventory's templates (see --monitor-config for a file).
    #[arg(long, env = "OPSKIT_MONITOR")]
    pub monitor: bool,
    /// Run the monitor engine with this monitor.toml (reloaded on SIGHUP or when it changes)
    /// besides the stored monitors; implies --monitor. Its settings.database is ignored: the
    /// monitor uses the server's database.
    #[arg(long, env = "OPSKIT_MONITOR_CONFIG", value_name = "FILE")]
    pub monitor_config: Option<PathBuf>,
    /// The monitor's leader lease among replicas on one PostgreSQL database: one runs the checks
    /// and sends the alerts, another takes over within this time after it dies; 1s to 1h
    /// [default: 15s].
    #[arg(long, env = "OPSKIT_MONITOR_LEASE", value_name = "DURATION", value_parser = parse_duration)]
    pub monitor_lease: Option<Duration>,
    /// How often monitors stored through the API and the inventory's are re-read (a write
    /// through this server's API applies at once) [default: 10s].
    #[arg(long, env = "OPSKIT_MONITOR_REFRESH", value_name = "DURATION", value_parser = parse_duration)]
    pub monitor_refresh: Option<Duration>,
    /// Cache rendered servers in memory, emptied on every write (true/false); on PostgreSQL other
    /// replicas' writes reach it through LISTEN/NOTIFY, and it is off while that connection is
    /// down [default: true].
    #[arg(long, env = "OPSKIT_SERVER_CACHE")]
    pub server_cache: Option<bool>,
    /// Who may see the status page (/status) and the monitor badges: `private` needs any
    /// credential the API takes (a browser is asked to log in; the viewer role is enough),
    /// `public` shows them to anyone who can reach the server.
    #[arg(
        long,
        env = "OPSKIT_STATUS_PAGE",
        value_enum,
        value_name = "ACCESS",
        default_value = "private"
    )]
    pub status_page: StatusPageArg,
}

/// `--status-page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusPageArg {
    Private,
    Public,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    database: Option<String>,
    cors_origins: Option<Vec<String>>,
    rate_limit: Option<u32>,
    login_rate_limit: Option<u32>,
    body_limit: Option<usize>,
    #[serde(default, deserialize_with = "file_duration")]
    request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "file_duration")]
    header_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "file_duration")]
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
    #[serde(default, deserialize_with = "file_duration")]
    access_token_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "file_duration")]
    refresh_token_ttl: Option<Duration>,
    basic_auth: Option<bool>,
    log_format: Option<String>,
    events_secrets: Option<Vec<String>>,
    #[serde(default, deserialize_with = "file_duration")]
    events_tolerance: Option<Duration>,
    monitor: Option<bool>,
    monitor_config: Option<PathBuf>,
    #[serde(default, deserialize_with = "file_duration")]
    monitor_lease: Option<Duration>,
    #[serde(default, deserialize_with = "file_duration")]
    monitor_refresh: Option<Duration>,
    server_cache: Option<bool>,
}

/// A duration in the config file: the flags' syntax (`"90s"`, `"1.5m"`), or a number of seconds.
fn file_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(n) => parse_duration(&n.to_string()),
        Raw::Text(t) => parse_duration(&t),
    }
    .map(Some)
    .map_err(serde::de::Error::custom)
}

fn secret_env(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

impl ServeArgs {
    fn resolve(self) -> anyhow::Result<(ServerConfig, LogFormat)> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::usage(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    Failure::usage(format!("bad config file {}: {e}", path.display()))
                        .with_hint("keys: bind, database, cors_origins, rate_limit, login_rate_limit, body_limit, request_timeout, header_timeout, idle_timeout, max_connections, access_token_ttl, refresh_token_ttl, basic_auth, log_format, events_secrets, events_tolerance, server_cache, monitor, monitor_config, monitor_lease, monitor_refresh")
                })?
            }
        };
        let d = ServerConfig::default();
        let log_format = match (self.log_format, file.log_format.as_deref()) {
            (Some(f), _) => f,
            (None, Some("json")) => LogFormat::Json,
            (None, Some("text")) | (None, None) => LogFormat::Text,
            (None, Some(other)) => {
                return Err(Failure::usage(format!(
                    "bad log_format {other:?} in the config file: use text or json"
                ))
                .into());
            }
        };
        let cors_origins = if self.cors_origins.is_empty() {
            file.cors_origins.unwrap_or_default()
        } else {
            self.cors_origins
        };
        for origin in &cors_origins {
            let ok = url::Url::parse(origin)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(Failure::usage(format!("bad CORS origin {origin:?}"))
                    .with_hint("give a full origin such as https://ops.example.com")
                    .into());
            }
        }
        let request_timeout = self.request_timeout.or(file.request_timeout);
        let secs = |v: Option<Duration>, default: Duration| v.unwrap_or(default);
        let event_specs = if self.events_secrets.is_empty() {
            file.events_secrets.unwrap_or_default()
        } else {
            self.events_secrets
        };
        let events_secrets = if event_specs.is_empty() {
            Vec::new()
        } else {
            crate::block_on(crate::cli::notify::standard_secrets(&event_specs))??
        };
        let events_tolerance = secs(
            self.events_tolerance.or(file.events_tolerance),
            d.events_tolerance,
        );
        let config = ServerConfig {
            bind: self.bind.or(file.bind).unwrap_or(d.bind),
            database_url: self
                .database
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
            cors_origins,
            rate_limit_per_minute: self
                .rate_limit
                .or(file.rate_limit)
                .unwrap_or(d.rate_limit_per_minute),
            login_rate_limit_per_minute: self
                .login_rate_limit
                .or(file.login_rate_limit)
                .unwrap_or(d.login_rate_limit_per_minute),
            body_limit_bytes: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(d.body_limit_bytes),
            request_timeout: secs(request_timeout, d.request_timeout),
            header_read_timeout: secs(
                self.header_timeout.or(file.header_timeout),
                d.header_read_timeout,
            ),
            idle_timeout: secs(self.idle_timeout.or(file.idle_timeout), d.idle_timeout),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            access_token_ttl: secs(
                self.access_token_ttl.or(file.access_token_ttl),
                d.access_token_ttl,
            ),
            refresh_token_ttl: secs(
                self.refresh_token_ttl.or(file.refresh_token_ttl),
                d.refresh_token_ttl,
            ),
            basic_auth: self.basic_auth.or(file.basic_auth).unwrap_or(d.basic_auth),
            jwt_secret: secret_env("OPSKIT_JWT_SECRET"),
            admin_password: secret_env("OPSKIT_ADMIN_PASSWORD"),
            events_secrets,
            events_tolerance,
            server_cache: self.server_cache.or(file.server_cache),
            user_recheck: d.user_recheck,
            monitor: opskit_server::config::MonitorSettings {
                enabled: self.monitor || file.monitor.unwrap_or(false),
                config_path: self.monitor_config.or(file.monitor_config),
                lease: self
                    .monitor_lease
                    .or(file.monitor_lease)
                    .unwrap_or(d.monitor.lease),
                refresh: self
                    .monitor_refresh
                    .or(file.monitor_refresh)
                    .unwrap_or(d.monitor.refresh),
            },
            status_page: match self.status_page {
                StatusPageArg::Private => opskit_server::config::StatusPageAccess::Private,
                StatusPageArg::Public => opskit_server::config::StatusPageAccess::Public,
            },
        };
        // every duration and size checked here, before anything starts: exit 2, never a panic
        // on the first login
        config
            .validate()
            .map_err(|e| Failure::usage(e.to_string()))?;
        Ok((config, log_format))
    }
}

fn server_error(e: opskit_server::Error) -> anyhow::Error {
    use opskit_server::Error as E;
    match e {
        E::BadDatabaseUrl(_) => Failure::usage(e.to_string())
            .with_hint("use sqlite://opskit.db or postgres://USER@HOST:5432/DB")
            .into(),
        E::Invalid(_) => Failure::usage(e.to_string()).into(),
        E::NoDatabase { ref path } => {
            let hint = format!(
                "the admin commands never create a database: create it with `opskit db init --database sqlite://{}` (or start `opskit serve` once), or point --database / OPSKIT_DATABASE at the existing one",
                path.display()
            );
            Failure::usage(e.to_string()).with_hint(hint).into()
        }
        E::Conflict(_) | E::NotFound(_) => Failure::new(code::FAILURE, e.to_string()).into(),
        E::DatabaseInUse { .. } => Failure::new(code::FAILURE, e.to_string())
            .with_hint("stop the other server first, or give this one another --database")
            .into(),
        E::Monitor(ref m) => {
            let c = match m {
                opskit_monitor::Error::Config(_) | opskit_monitor::Error::Io { .. } => code::USAGE,
                opskit_monitor::Error::Unreachable(_) | opskit_monitor::Error::Database(_) => {
                    code::NETWORK
                }
                _ => code::FAILURE,
            };
            let f = Failure::new(c, e.to_string());
            if c == code::USAGE {
                f.with_hint("`opskit monitor validate FILE` checks a monitor file").into()
            } else {
                f.into()
            }
        }
        E::Bind { .. } => Failure::new(code::FAILURE, e.to_string())
            .with_hint("another process may be using the port; pick another with --bind")
            .into(),
        E::DatabaseConnect(_) => Failure::new(code::NETWORK, e.to_string())
            .with_hint("check --database / OPSKIT_DATABASE (host, port, user, password, database name) and that PostgreSQL is running there")
            .into(),
        E::Database(_) => Failure::new(code::NETWORK, e.to_string())
            .with_hint("check --database / OPSKIT_DATABASE and that the database is running")
            .into(),
        other => anyhow::Error::new(other),
    }
}

/// The next delivery of a signal (never, when its handler could not be installed).
#[cfg(unix)]
async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// SIGTERM or Ctrl-C. The handlers are installed when this is called (before the server says
/// it listens), so a signal sent right after that line stops the server gracefully instead of
/// killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            tokio::select! {
                () = recv(term.as_mut()) => {},
                () = recv(int.as_mut()) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
    }
}

/// Runs `opskit serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let (config, log_format) = args.resolve()?;
    logging::init(log_format, "info");
    crate::block_on(async move {
        let signalled = shutdown_signal();
        let app = Application::build(config.clone())
            .await
            .map_err(server_error)?;
        if let Some(pw) = app.generated_admin_password() {
            eprintln!(
                "created user `admin` with password: {}\n(shown once; change it with `opskit user passwd admin`)",
                pw.expose_secret()
            );
        }
        tracing::info!(
            addr = %app.local_addr(),
            database = %opskit_server::store::redact_url(&config.database_url),
            docs = %format!("http://{}/docs", app.local_addr()),
            "opskit serve listening"
        );
        // The engine ending by itself (an error) stops the server too: a server that no longer
        // monitors must not look as if it did.
        let monitor = app.state().monitor().cloned();
        let shutdown = async move {
            match monitor {
                Some(m) => tokio::select! {
                    () = signalled => {}
                    () = m.finished() => tracing::error!("the monitor engine stopped; shutting down"),
                },
                None => signalled.await,
            }
        };
        app.run_until(shutdown).await.map_err(server_error)?;
        tracing::info!("stopped");
        Ok(code::OK)
    })?
}

/// Where the admin commands find the database.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database: sqlite://FILE or postgres://… (the one `opskit serve` uses).
    #[arg(long, env = "OPSKIT_DATABASE", default_value = DEFAULT_DATABASE, global = true)]
    pub database: String,
}

/// `opskit db …`: the database of `opskit serve`.
#[derive(Debug, Args)]
pub struct DbCommandArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database (a SQLite file readable by its owner only; on PostgreSQL the tables in
    /// an existing database) and apply migrations. An existing database keeps its data and is
    /// only migrated. `opskit serve` does the same on start; the admin commands never do.
    Init,
}

/// Runs `opskit db …`.
pub fn db(args: DbCommandArgs) -> anyhow::Result<u8> {
    let url = args.db.database;
    crate::block_on(async move {
        match args.command {
            DbCommand::Init => {
                let existed = match users::open_existing(&url).await {
                    Ok(_) => true,
                    Err(opskit_server::Error::NoDatabase { path }) => {
                        users::open(&url).await.map_err(server_error)?;
                        eprintln!("created the database {} (owner-only)", path.display());
                        false
                    }
                    Err(e) => return Err(server_error(e)),
                };
                if existed {
                    eprintln!(
                        "the database {} already exists; migrations are up to date",
                        describe_database(&url)
                    );
                }
            }
        }
        Ok(code::OK)
    })?
}

/// A database URL for messages: the absolute path of a SQLite file, a PostgreSQL URL without its
/// password.
fn describe_database(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let file = rest.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or(file);
        return std::path::absolute(file)
            .map_or_else(|_| file.to_owned(), |p| p.display().to_string());
    }
    opskit_server::store::redact_url(url)
}

/// How a new password is given.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of stdin (otherwise OPSKIT_USER_PASSWORD, otherwise
    /// a prompt on the terminal).
    #[arg(long, conflicts_with = "generate")]
    pub password_stdin: bool,
    /// Generate a random password and print it once on stdout.
    #[arg(long)]
    pub generate: bool,
}

impl PasswordArgs {
    /// The password and whether it was generated.
    fn get(&self) -> anyhow::Result<(SecretString, bool)> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let pw = line.trim_end_matches(['\r', '\n']).to_owned();
            if pw.is_empty() {
                return Err(Failure::usage("no password on stdin").into());
            }
            return Ok((SecretString::from(pw), false));
        }
        if self.generate {
            return Ok((
                SecretString::from(opskit_server::auth::random_token(18)),
                true,
            ));
        }
        if let Some(pw) = secret_env("OPSKIT_USER_PASSWORD") {
            return Ok((pw, false));
        }
        // never a silent random password: without a terminal to ask on, say how to give one
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage("no password given and no terminal to ask for one")
                .with_hint("use --password-stdin, OPSKIT_USER_PASSWORD, or --generate for a random one")
                .into());
        }
        let first = rpassword::prompt_password("new password: ")
            .context("reading the password from the terminal")?;
        let again = rpassword::prompt_password("again: ")
            .context("reading the password from the terminal")?;
        if first != again {
            return Err(Failure::usage("the two passwords differ").into());
        }
        if first.is_empty() {
            return Err(Failure::usage("empty password").into());
        }
        Ok((SecretString::from(first), false))
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        username: String,
        /// admin, operator (read and write) or viewer (read only).
        #[arg(long, default_value = "viewer")]
        role: Role,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a user's password.
    Passwd {
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user (their refresh tokens are revoked).
    Remove { username: String },
}

/// `opskit user …`
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; the key is printed once on stdout and only its hash is kept.
    Create {
        /// A name to recognise the key by.
        name: String,
        /// admin, operator (read and write) or viewer (read only).
        #[arg(long, default_value = "operator")]
        role: Role,
    },
    /// List API keys (never the keys themselves).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by id or name.
    Revoke { id_or_name: String },
}

/// `opskit apikey …`
#[derive(Debug, Args)]
pub struct ApiKeyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: ApiKeyCommand,
}

fn fmt_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn print_generated(what: &str, pw: &SecretString) {
    println!("{}", pw.expose_secret());
    if std::io::stderr().is_terminal() {
        eprintln!("(generated password for {what}, shown once)");
    }
}

/// Runs `opskit user …`.
pub fn user(args: UserArgs) -> anyhow::Result<u8> {
    crate::block_on(async move {
        let db = users::open_existing(&args.db.database)
            .await
            .map_err(server_error)?;
        match args.command {
            UserCommand::Add {
                username,
                role,
                password,
            } => {
                let (pw, generated) = password.get()?;
                users::add_user(&db, &username, pw.clone(), role)
                    .await
                    .map_err(server_error)?;
                eprintln!("created user {username} ({role})");
                if generated {
                    print_generated(&username, &pw);
                }
            }
            UserCommand::Passwd { username, password } => {
                let (pw, generated) = password.get()?;
                users::set_password(&db, &username, pw.clone())
                    .await
                    .map_err(server_error)?;
                eprintln!("password of {username} changed");
                if generated {
                    print_generated(&username, &pw);
                }
            }
            UserCommand::List { json } => {
                let list = db.list_users().await.map_err(server_error)?;
                if json {
                    let v: Vec<_> = list
                        .iter()
                        .map(|u| {
                            serde_json::json!({"id": u.id, "username": u.username, "role": u.role, "created_at": fmt_time(u.created_at)})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("{:<24} {:<9} CREATED", "USERNAME", "ROLE");
                    for u in list {
                        println!(
                            "{:<24} {:<9} {}",
                            u.username,
                            u.role.as_str(),
                            fmt_time(u.created_at)
                        );
                    }
                }
            }
            UserCommand::Remove { username } => {
                users::remove_user(&db, &username)
                    .await
                    .map_err(server_error)?;
                eprintln!("removed user {username}");
            }
        }
        Ok(code::OK)
    })?
}

/// Runs `opskit apikey …`.
pub fn apikey(args: ApiKeyArgs) -> anyhow::Result<u8> {
    crate::block_on(async move {
        let db = users::open_existing(&args.db.database)
            .await
            .map_err(server_error)?;
        match args.command {
            ApiKeyCommand::Create { name, role } => {
                let (secret, rec) = users::create_api_key(&db, &name, role)
                    .await
                    .map_err(server_error)?;
                eprintln!(
                    "created API key {name} ({role}), id {}; it is shown once:",
                    rec.id
                );
                println!("{}", secret.expose_secret());
            }
            ApiKeyCommand::List { json } => {
                let list = db.list_api_keys().await.map_err(server_error)?;
                if json {
                    let v: Vec<_> = list
                        .iter()
                        .map(|k| {
                            serde_json::json!({"id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role,
                                "created_at": fmt_time(k.created_at), "revoked_at": k.revoked_at.map(fmt_time)})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "{:<36} {:<20} {:<12} {:<9} STATE",
                        "ID", "NAME", "PREFIX", "ROLE"
                    );
                    for k in list {
                        println!(
                            "{:<36} {:<20} {:<12} {:<9} {}",
                            k.id,
                            k.name,
                            k.prefix,
                            k.role.as_str(),
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        );
                    }
                }
            }
            ApiKeyCommand::Revoke { id_or_name } => {
                let n = users::revoke_api_key(&db, &id_or_name)
                    .await
                    .map_err(server_error)?;
                eprintln!("revoked {n} API key(s)");
            }
        }
        Ok(code::OK)
    })?
}
