//! The database: SQLite by default, PostgreSQL alike (sqlx `Any`, portable SQL, `$N`
//! placeholders). Migrations are embedded and kept in their own table
//! (`_opskit_monitor_migrations`), so `opskit serve` can run them in its database too.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor as _, Row as _};

use crate::Result;
use crate::lease::Fence;

/// The `resolved_reason` of an incident closed because its monitor left the configuration.
pub const MONITOR_REMOVED: &str = "monitor removed";

/// Closes `monitor`'s open incident (if any) as removed and forgets its firing alerts.
async fn close_open_incident(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    monitor: &str,
    now_ms: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE incidents SET resolved_ms = $1, resolved_reason = $2 \
         WHERE monitor = $3 AND resolved_ms IS NULL",
    )
    .bind(now_ms)
    .bind(MONITOR_REMOVED)
    .bind(monitor)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM alert_state WHERE monitor = $1")
        .bind(monitor)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// The table where the monitor's applied migrations are recorded.
pub const MIGRATIONS_TABLE: &str = "_opskit_monitor_migrations";

/// The monitor's migrations, for any sqlx connection (SQLite or PostgreSQL).
pub fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    // Another component's migrations may share the database.
    m.set_ignore_missing(true);
    m
}

/// Which database it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool on the monitor's database.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
    /// Set on the leader's handle: state writes and delivery claims check its fencing token.
    pub(crate) fence: Option<Arc<Fence>>,
}

/// Turns what the user wrote (`sqlite://x.db`, `x.db`, `postgres://…`) into a URL.
pub fn normalise_url(url: &str) -> Result<(String, Backend)> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Backend::Postgres));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(crate::Error::Config(
            "empty database URL: give sqlite://PATH or postgres://…".into(),
        ));
    }
    if url.contains("://") && !url.starts_with("sqlite://") {
        return Err(crate::Error::Config(format!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
            url.split("://").next().unwrap_or_default()
        )));
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = if path.contains("mode=") {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}{sep}mode=rwc")
    };
    Ok((url, Backend::Sqlite))
}

/// How long the first connection to PostgreSQL may take before it is reported.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Fails at once, naming `HOST:PORT`, when PostgreSQL's address refuses or does not answer,
/// instead of waiting for the pool's acquire timeout (the pool retries a refused connection
/// until then). Other errors (authentication, a missing database) are reported as they are.
async fn first_connection(url: &str) -> Result<()> {
    use sqlx::Connection as _;
    let shown = url::Url::parse(url).ok().map_or_else(
        || "the PostgreSQL server".to_string(),
        |u| {
            let port = u.port().unwrap_or(5432);
            match u.host() {
                Some(url::Host::Ipv6(a)) => format!("[{a}]:{port}"),
                Some(h) => format!("{h}:{port}"),
                None => format!("localhost:{port}"),
            }
        },
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(
            crate::Error::Unreachable(format!("connection refused to {shown}")),
        ),
        Ok(Err(sqlx::Error::Io(e))) => Err(crate::Error::Unreachable(format!(
            "cannot connect to {shown}: {e}"
        ))),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(crate::Error::Unreachable(format!(
            "no answer from {shown} within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A new SQLite file is created readable by its owner only (0600; SQLite gives its `-wal` and
/// `-shm` files the same mode): it holds alert payloads, incident keys and heartbeat pings. An
/// existing file keeps its mode; a path that cannot be created is left to SQLite to report.
fn create_owner_only(url: &str) {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') || url.contains("mode=memory") {
        return;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let _ = o.open(path);
}

impl Db {
    /// Connects and applies the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        install_default_drivers();
        let (url, backend) = normalise_url(url)?;
        let opts = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            // One writer at a time on SQLite: no busy errors between our own connections.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                    } else {
                        // Our transactions never wait on us between statements; one that does
                        // belongs to a paused process (SIGSTOP), whose locks would hold up a
                        // leader takeover: the server ends it.
                        conn.execute("SET idle_in_transaction_session_timeout = '5s'")
                            .await?;
                    }
                    Ok(())
                })
            });
        if backend == Backend::Postgres {
            first_connection(&url).await?;
        } else {
            create_owner_only(&url);
        }
        let pool = opts.connect(&url).await?;
        let db = Self {
            pool,
            backend,
            fence: None,
        };
        migrator().run(&db.pool).await?;
        Ok(db)
    }

    /// The pool (for callers with queries of their own, e.g. tests and `opskit serve`).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The same pool, with `fence` checked by every state write and delivery claim (see
    /// [`crate::lease`]).
    pub fn with_fence(&self, fence: Arc<Fence>) -> Self {
        Self {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// Closes the pool (waits for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Heartbeat pings stored by an earlier run.
    pub async fn heartbeats(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT token, last_ping_ms FROM heartbeats")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect())
    }

    /// Stores a heartbeat ping.
    pub async fn store_heartbeat(&self, token: &str, at_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO heartbeats (token, last_ping_ms) VALUES ($1, $2) \
             ON CONFLICT (token) DO UPDATE SET last_ping_ms = excluded.last_ping_ms",
        )
        .bind(token)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the open incidents of the monitors not named in `present` (they left the
    /// effective configuration: deleted through the API, their server gone from the inventory,
    /// removed from monitor.toml): `resolved_ms` is `now_ms`, `resolved_reason` is
    /// [`MONITOR_REMOVED`], and their firing alerts are forgotten. No "resolved" alert is sent:
    /// nothing checked that the service recovered. On the leader's handle the write is fenced.
    /// Returns the names whose incidents were closed.
    pub async fn close_incidents_of_removed(
        &self,
        present: &std::collections::HashSet<&str>,
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let open: Vec<String> =
            sqlx::query("SELECT DISTINCT monitor FROM incidents WHERE resolved_ms IS NULL")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .filter(|m| !present.contains(m.as_str()))
                .collect();
        if open.is_empty() {
            return Ok(open);
        }
        let mut tx = self.pool.begin().await?;
        for m in &open {
            close_open_incident(&mut tx, m, now_ms).await?;
        }
        // Fencing after the first write (it holds SQLite's lock; on PostgreSQL the check locks
        // the lease row until commit).
        if let Some(fence) = &self.fence {
            fence.check(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(open)
    }

    /// Closes the open incident of `monitor` at once, as [`Db::close_incidents_of_removed`]
    /// does (for the API's delete, in the same request). Returns whether there was one.
    pub async fn close_incident_of_removed(&self, monitor: &str, now_ms: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let closed = close_open_incident(&mut tx, monitor, now_ms).await?;
        if let Some(fence) = &self.fence {
            fence.check(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(closed)
    }

    /// Deletes buckets, incidents, results and finished outbox rows older than `retention`.
    pub async fn apply_retention(&self, now_ms: i64, retention: Duration) -> Result<()> {
        let cut = now_ms - retention.as_millis() as i64;
        for sql in [
            "DELETE FROM uptime_buckets WHERE bucket_ms < $1",
            "DELETE FROM incidents WHERE resolved_ms IS NOT NULL AND resolved_ms < $1",
            "DELETE FROM results WHERE at_ms < $1",
            "DELETE FROM outbox WHERE (delivered_ms IS NOT NULL OR failed_ms IS NOT NULL) AND created_ms < $1",
        ] {
            sqlx::query(sql).bind(cut).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Keeps only the newest `keep` raw results of `monitor`.
    pub async fn trim_results(&self, monitor: &str, keep: u32) -> Result<()> {
        let row = sqlx::query(
            "SELECT at_ms FROM results WHERE monitor = $1 ORDER BY at_ms DESC LIMIT 1 OFFSET $2",
        )
        .bind(monitor)
        .bind(i64::from(keep))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = row {
            let at: i64 = r.get(0);
            sqlx::query("DELETE FROM results WHERE monitor = $1 AND at_ms <= $2")
                .bind(monitor)
                .bind(at)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod owner_only {
    use std::os::unix::fs::PermissionsExt as _;

    #[tokio::test]
    async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitor.db");
        let db = super::Db::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        drop(db);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
