//! Storage: one [`Store`] trait, a SQLite and a PostgreSQL implementation generated from the same
//! SQL (runtime queries built with `QueryBuilder`, so one code path serves both databases).

pub mod events;
pub mod notify;
pub mod pg_connect;
mod sql;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Error;
use crate::model::{ApiKey, IdempotencyRecord, ListQuery, RefreshToken, Server, User};

pub use sql::{PgStore, SqliteStore};

/// Which row a path segment names.
#[derive(Debug, Clone)]
pub enum ServerRef {
    Id(Uuid),
    Hostname(String),
}

impl ServerRef {
    pub fn parse(s: &str) -> ServerRef {
        match Uuid::parse_str(s) {
            Ok(id) => ServerRef::Id(id),
            Err(_) => ServerRef::Hostname(s.to_ascii_lowercase()),
        }
    }
}

/// Outcome of a create.
#[derive(Debug)]
pub enum CreateOutcome {
    Created,
    /// Another request with the same idempotency key got there first.
    IdempotencyKeyTaken,
}

/// Outcome of an update or delete guarded by a revision.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    NotFound,
    VersionMismatch,
}

/// Outcome of presenting a refresh token.
#[derive(Debug)]
pub enum RefreshUse {
    /// Valid and now consumed.
    Valid(RefreshToken),
    /// Already used (someone kept a copy): the family has just been revoked.
    Reused(Uuid),
    /// Revoked (logout, password change, user removal, or an earlier reuse).
    Revoked,
    /// Unknown or expired.
    Invalid,
}

/// Everything the API needs from a database.
pub trait Store: Send + Sync {
    fn migrate(&self) -> impl Future<Output = Result<(), Error>> + Send;
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send;

    fn list_servers(
        &self,
        q: &ListQuery,
    ) -> impl Future<Output = Result<(Vec<Server>, u64), Error>> + Send;
    fn get_server(
        &self,
        r: &ServerRef,
    ) -> impl Future<Output = Result<Option<Server>, Error>> + Send;
    /// Inserts `server` (and, in the same transaction, the idempotency record).
    fn create_server(
        &self,
        server: &Server,
        idem: Option<&IdempotencyRecord>,
    ) -> impl Future<Output = Result<CreateOutcome, Error>> + Send;
    fn get_idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, Error>> + Send;
    /// Writes `server` over the row with the same id if its version is `expected_version`;
    /// the stored version becomes `server.version`.
    fn update_server(
        &self,
        server: &Server,
        expected_version: i64,
    ) -> impl Future<Output = Result<WriteOutcome, Error>> + Send;
    fn delete_server(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<WriteOutcome, Error>> + Send;

    fn count_users(&self) -> impl Future<Output = Result<u64, Error>> + Send;
    fn create_user(&self, user: &User) -> impl Future<Output = Result<(), Error>> + Send;
    fn user_by_name(&self, name: &str) -> impl Future<Output = Result<Option<User>, Error>> + Send;
    fn user_by_id(&self, id: Uuid) -> impl Future<Output = Result<Option<User>, Error>> + Send;
    fn list_users(&self) -> impl Future<Output = Result<Vec<User>, Error>> + Send;
    fn set_password(
        &self,
        name: &str,
        hash: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    fn delete_user(&self, name: &str) -> impl Future<Output = Result<bool, Error>> + Send;

    fn create_api_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), Error>> + Send;
    fn api_key_by_hash(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKey>, Error>> + Send;
    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, Error>> + Send;
    /// Revokes by id or name; returns how many keys were revoked.
    fn revoke_api_key(&self, id_or_name: &str) -> impl Future<Output = Result<u64, Error>> + Send;

    fn insert_refresh(&self, t: &RefreshToken) -> impl Future<Output = Result<(), Error>> + Send;
    fn use_refresh(
        &self,
        hash: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<RefreshUse, Error>> + Send;
    /// Revokes the family the token belongs to; its id, or `None` when the token is unknown.
    fn revoke_refresh_family(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<Uuid>, Error>> + Send;
    /// Whether the login (refresh-token family) `family` is still live.
    fn session_active(&self, family: Uuid) -> impl Future<Output = Result<bool, Error>> + Send;

    fn get_setting(&self, name: &str)
    -> impl Future<Output = Result<Option<String>, Error>> + Send;
    /// Stores `value` unless the setting exists; returns the stored value either way.
    fn init_setting(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<String, Error>> + Send;
}

/// The store chosen by the database URL.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    /// Connects to `sqlite://FILE` (created if missing, readable by its owner only: it holds the
    /// JWT signing key and the password hashes) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        Db::open(url, true).await
    }

    /// Connects to a database that must already exist (the admin commands never create one):
    /// a missing SQLite file is an error naming its path.
    pub async fn connect_existing(url: &str) -> Result<Db, Error> {
        Db::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Db, Error> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::BadDatabaseUrl(format!("{url}: {e}")))?;
            let path = opts.get_filename().to_path_buf();
            let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
            if !in_memory && !path.exists() {
                if !create {
                    let path = std::path::absolute(&path).unwrap_or(path);
                    return Err(Error::NoDatabase { path });
                }
                create_owner_only(&path)?;
            }
            let opts = opts
                .create_if_missing(create)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: every acknowledged commit is fsynced, so it survives kill -9 and power loss.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(SqliteStore::new(pool)))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| Error::BadDatabaseUrl(format!("{}: {e}", redact_url(url))))?;
            // one real connection first: a refusal is said at once, not after the pool's
            // silent retries end in "pool timed out"
            pg_connect::check(&opts).await?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Db::Postgres(PgStore::new(pool)))
        } else {
            Err(Error::BadDatabaseUrl(format!(
                "{}: use sqlite://FILE (e.g. sqlite://opskit.db) or postgres://USER@HOST/DB",
                redact_url(url)
            )))
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Db::Sqlite($s) => $e.await,
            Db::Postgres($s) => $e.await,
        }
    };
}

impl Store for Db {
    async fn migrate(&self) -> Result<(), Error> {
        delegate!(self, s => s.migrate())
    }
    async fn ping(&self) -> Result<(), Error> {
        delegate!(self, s => s.ping())
    }
    async fn list_servers(&self, q: &ListQuery) -> Result<(Vec<Server>, u64), Error> {
        delegate!(self, s => s.list_servers(q))
    }
    async fn get_server(&self, r: &ServerRef) -> Result<Option<Server>, Error> {
        delegate!(self, s => s.get_server(r))
    }
    async fn create_server(
        &self,
        server: &Server,
        idem: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, Error> {
        delegate!(self, s => s.create_server(server, idem))
    }
    async fn get_idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        delegate!(self, s => s.get_idempotency(principal, key))
    }
    async fn update_server(
        &self,
        server: &Server,
        expected_version: i64,
    ) -> Result<WriteOutcome, Error> {
        delegate!(self, s => s.update_server(server, expected_version))
    }
    async fn delete_server(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<WriteOutcome, Error> {
        delegate!(self, s => s.delete_server(id, expected_version))
    }
    async fn count_users(&self) -> Result<u64, Error> {
        delegate!(self, s => s.count_users())
    }
    async fn create_user(&self, user: &User) -> Result<(), Error> {
        delegate!(self, s => s.create_user(user))
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<User>, Error> {
        delegate!(self, s => s.user_by_name(name))
    }
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, Error> {
        delegate!(self, s => s.user_by_id(id))
    }
    async fn list_users(&self) -> Result<Vec<User>, Error> {
        delegate!(self, s => s.list_users())
    }
    async fn set_password(&self, name: &str, hash: &str) -> Result<bool, Error> {
        delegate!(self, s => s.set_password(name, hash))
    }
    async fn delete_user(&self, name: &str) -> Result<bool, Error> {
        delegate!(self, s => s.delete_user(name))
    }
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), Error> {
        delegate!(self, s => s.create_api_key(key))
    }
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, Error> {
        delegate!(self, s => s.api_key_by_hash(hash))
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        delegate!(self, s => s.list_api_keys())
    }
    async fn revoke_api_key(&self, id_or_name: &str) -> Result<u64, Error> {
        delegate!(self, s => s.revoke_api_key(id_or_name))
    }
    async fn insert_refresh(&self, t: &RefreshToken) -> Result<(), Error> {
        delegate!(self, s => s.insert_refresh(t))
    }
    async fn use_refresh(&self, hash: &str, now: OffsetDateTime) -> Result<RefreshUse, Error> {
        delegate!(self, s => s.use_refresh(hash, now))
    }
    async fn revoke_refresh_family(&self, hash: &str) -> Result<Option<Uuid>, Error> {
        delegate!(self, s => s.revoke_refresh_family(hash))
    }
    async fn session_active(&self, family: Uuid) -> Result<bool, Error> {
        delegate!(self, s => s.session_active(family))
    }
    async fn get_setting(&self, name: &str) -> Result<Option<String>, Error> {
        delegate!(self, s => s.get_setting(name))
    }
    async fn init_setting(&self, name: &str, value: &str) -> Result<String, Error> {
        delegate!(self, s => s.init_setting(name, value))
    }
}

/// A database URL with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Creates an empty file readable and writable by its owner only (SQLite gives its `-wal` and
/// `-shm` files the same permissions).
fn create_owner_only(path: &std::path::Path) -> Result<(), Error> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot create the database {}: {e}", path.display()),
        ))),
    }
}

/// Timestamps are stored as fixed-width RFC 3339 text in UTC, so they sort as text.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

pub(crate) fn parse_ts(s: &str) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Corrupt(format!("timestamp {s:?}: {e}")))
}

/// Now, truncated to microseconds (what the database keeps).
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.microsecond() * 1000).unwrap_or(t)
}
