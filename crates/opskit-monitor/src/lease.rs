//! High availability: a leader lease held in the database, and the fencing token that every
//! write of the leader carries.
//!
//! Several `opskit monitor run` (later `opskit serve`) processes may share one PostgreSQL
//! database; exactly one of them, the leader, runs checks and delivers alerts.
//!
//! - The lease is one row of `leader_lease`: the holder (`host:pid:random`), a fencing
//!   `token` that increases on every takeover, when the holder took it, and when it expires.
//!   Expiry is computed with the **database's clock** (`clock_timestamp()` on PostgreSQL), so
//!   the hosts' clocks do not matter.
//! - The leader renews every lease/3. A follower takes over only after expiry, except from a
//!   holder on the same host whose process is gone (a restart after kill -9 leads at once).
//! - A leader that cannot renew before its lease runs out (by its own monotonic clock, counted
//!   from the start of its last successful renewal) steps down at once: its [`Fence`] refuses
//!   every write from then on, and its work is told to stop.
//! - Fencing: recording a result ([`crate::engine::record`]) and claiming an outbox row for
//!   delivery check, in the same transaction, that the caller's token is the current, unexpired
//!   one (`SELECT … FOR SHARE` on PostgreSQL, so a takeover waits for that transaction; on SQLite
//!   the transaction already holds the write lock). A leader paused past its lease (SIGSTOP,
//!   a long GC-like stall, a VM migration) and then resumed can neither record state nor send an
//!   alert: its writes are refused and it steps down.
//!
//! On SQLite the same code works (one file, usually one process).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row as _};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::store::{Backend, Db};
use crate::{Error, Result};

/// The lease of the monitor's leader (one row per name).
pub const LEASE_NAME: &str = "monitor";

/// How long a lease lasts unless renewed, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The shortest lease accepted (renewal every third of it must be practical).
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// The database's clock in milliseconds since the epoch, as SQL.
fn now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// This process's PID namespace (`/proc/self/ns/pid`), so that a PID is only compared with
/// PIDs of the same namespace (two containers may share a host name).
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_string_lossy();
    let inode = text.strip_prefix("pid:[")?.strip_suffix(']')?;
    inode.parse::<u64>().ok().map(|n| n.to_string())
}

/// An identity for this process: `host:pid:random` (the random part carries the PID
/// namespace, `random.namespace`, where it can be read).
pub fn default_holder() -> String {
    let ns = pid_namespace().map_or_else(String::new, |n| format!(".{n}"));
    format!(
        "{}:{}:{:08x}{ns}",
        this_host(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Is `holder` a process of this host that no longer exists (killed, crashed)? Then its lease
/// need not be waited out: a restart after kill -9 leads at once. Anything uncertain is `false`.
fn holder_is_gone_here(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(tail), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let (Some((_, ns)), Some(ours)) = (tail.split_once('.'), pid_namespace()) else {
        return false;
    };
    ns == ours
        && host == this_host()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The lease as stored, with the database's clock at the time it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    pub holder: String,
    /// The fencing token: increases on every takeover.
    pub token: i64,
    /// When this holder took the lease.
    pub since_ms: i64,
    /// Its last renewal.
    pub renewed_ms: i64,
    /// When it runs out unless renewed.
    pub expires_ms: i64,
    /// The database's clock when this was read.
    pub db_now_ms: i64,
}

impl LeaseInfo {
    /// Is the lease still running (by the database's clock when it was read)?
    pub fn is_live(&self) -> bool {
        self.expires_ms > self.db_now_ms
    }
}

/// The current lease, if any process ever took it.
pub async fn current(db: &Db) -> Result<Option<LeaseInfo>> {
    let sql = format!(
        "SELECT holder, token, since_ms, renewed_ms, expires_ms, {} FROM leader_lease \
         WHERE name = $1",
        now_sql(db.backend)
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(LEASE_NAME)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| LeaseInfo {
        holder: r.get(0),
        token: r.get(1),
        since_ms: r.get(2),
        renewed_ms: r.get(3),
        expires_ms: r.get(4),
        db_now_ms: r.get(5),
    }))
}

#[derive(Debug, Clone, Copy)]
struct Held {
    token: i64,
    /// Past this instant (local monotonic clock) the lease may have run out: no more writes.
    deadline: Instant,
}

/// This process's claim to leadership, checked by every write of the leader.
#[derive(Debug)]
pub struct Fence {
    holder: String,
    held: Mutex<Option<Held>>,
    /// Woken when a write finds the lease gone (the elector then steps down at once).
    lost: Notify,
    check_sql: String,
}

impl Fence {
    fn new(holder: String, backend: Backend) -> Self {
        let lock = match backend {
            // A takeover (an UPDATE of this row) waits until the fenced transaction ends.
            Backend::Postgres => " FOR SHARE",
            // The fenced transaction holds SQLite's write lock already.
            Backend::Sqlite => "",
        };
        Self {
            holder,
            held: Mutex::new(None),
            lost: Notify::new(),
            check_sql: format!(
                "SELECT token FROM leader_lease WHERE name = $1 AND holder = $2 AND token = $3 \
                 AND expires_ms > {}{lock}",
                now_sql(backend)
            ),
        }
    }

    /// The fencing token while this process leads and its lease has not run out locally.
    pub fn token(&self) -> Option<i64> {
        let held = self.held.lock().ok().and_then(|h| *h)?;
        (Instant::now() < held.deadline).then_some(held.token)
    }

    fn set(&self, held: Option<Held>) {
        if let Ok(mut h) = self.held.lock() {
            *h = held;
        }
    }

    pub(crate) fn refused(&self, why: &str) -> Error {
        self.set(None);
        self.lost.notify_one();
        Error::Fenced(why.to_string())
    }

    /// Checks, inside the caller's transaction, that this process still holds the lease with
    /// its token; returns the token. A refusal also makes this process step down.
    pub(crate) async fn check(&self, conn: &mut sqlx::AnyConnection) -> Result<i64> {
        let Some(token) = self.token() else {
            return Err(self.refused("this process does not hold the leader lease"));
        };
        let row = sqlx::query(AssertSqlSafe(self.check_sql.as_str()))
            .bind(LEASE_NAME)
            .bind(&self.holder)
            .bind(token)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(_) => Ok(token),
            None => Err(self.refused(&format!(
                "the leader lease (token {token}) expired or was taken over"
            ))),
        }
    }
}

/// What a follower's attempt to take the lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This process now leads.
    Won(LeaseInfo),
    /// Another process leads (or the lease has not been released yet).
    Held(LeaseInfo),
}

/// Takes, renews and releases the lease for one process.
#[derive(Debug)]
pub struct Elector {
    db: Db,
    holder: String,
    duration: Duration,
    fence: Arc<Fence>,
}

impl Elector {
    /// `holder` identifies this process (see [`default_holder`]); `duration` is the lease.
    pub fn new(db: Db, holder: String, duration: Duration) -> Self {
        let fence = Arc::new(Fence::new(holder.clone(), db.backend));
        Self {
            db,
            holder,
            duration: duration.max(MIN_LEASE),
            fence,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The fence (its token is `Some` while this process leads).
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// The database, with this process's fence on every state write and delivery claim.
    pub fn fenced_db(&self) -> Db {
        self.db.with_fence(self.fence.clone())
    }

    fn ms(&self) -> i64 {
        i64::try_from(self.duration.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Takes the lease when nobody holds a live one; every takeover increases the token.
    pub async fn try_acquire(&self) -> Result<Acquired> {
        let now = now_sql(self.db.backend);
        let sql = format!(
            "INSERT INTO leader_lease (name, holder, token, since_ms, renewed_ms, expires_ms) \
             VALUES ($1, $2, 1, {now}, {now}, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             token = leader_lease.token + 1, since_ms = excluded.since_ms, \
             renewed_ms = excluded.renewed_ms, expires_ms = excluded.expires_ms \
             WHERE leader_lease.expires_ms <= excluded.since_ms \
             RETURNING token"
        );
        let started = Instant::now();
        let won = sqlx::query(AssertSqlSafe(sql))
            .bind(LEASE_NAME)
            .bind(&self.holder)
            .bind(self.ms())
            .fetch_optional(&self.db.pool)
            .await?
            .map(|r| r.get::<i64, _>(0));
        if let Some(token) = won {
            self.fence.set(Some(Held {
                token,
                deadline: started + self.duration,
            }));
        }
        let info = current(&self.db)
            .await?
            .ok_or_else(|| Error::Other("the leader lease row vanished".into()))?;
        if won.is_none() && info.is_live() && holder_is_gone_here(&info.holder) {
            return self.take_over_from_gone(&info).await;
        }
        Ok(match won {
            Some(t) if info.token == t && info.holder == self.holder => Acquired::Won(info),
            Some(_) => {
                // Taken over between the two statements (a lease shorter than a query).
                self.fence.set(None);
                Acquired::Held(info)
            }
            None => Acquired::Held(info),
        })
    }

    /// Takes a live lease whose holder process no longer exists on this host.
    async fn take_over_from_gone(&self, gone: &LeaseInfo) -> Result<Acquired> {
        let now = now_sql(self.db.backend);
        let sql = format!(
            "UPDATE leader_lease SET holder = $1, token = token + 1, since_ms = {now}, \
             renewed_ms = {now}, expires_ms = {now} + $2 \
             WHERE name = $3 AND holder = $4 AND token = $5 RETURNING token"
        );
        let started = Instant::now();
        let won = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.holder)
            .bind(self.ms())
            .bind(LEASE_NAME)
            .bind(&gone.holder)
            .bind(gone.token)
            .fetch_optional(&self.db.pool)
            .await?
            .map(|r| r.get::<i64, _>(0));
        let info = current(&self.db)
            .await?
            .ok_or_else(|| Error::Other("the leader lease row vanished".into()))?;
        match won {
            Some(token) if info.token == token && info.holder == self.holder => {
                tracing::info!(gone = %gone.holder, "the previous leader's process is gone: taking over without waiting for its lease");
                self.fence.set(Some(Held {
                    token,
                    deadline: started + self.duration,
                }));
                Ok(Acquired::Won(info))
            }
            _ => Ok(Acquired::Held(info)),
        }
    }

    /// Extends the lease; `false` when it was lost (expired or taken over), and this process
    /// has stepped down.
    pub async fn renew(&self) -> Result<bool> {
        let Some(token) = self.fence.token() else {
            return Ok(false);
        };
        let now = now_sql(self.db.backend);
        let sql = format!(
            "UPDATE leader_lease SET renewed_ms = {now}, expires_ms = {now} + $1 \
             WHERE name = $2 AND holder = $3 AND token = $4 AND expires_ms > {now} \
             RETURNING token"
        );
        let started = Instant::now();
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(self.ms())
            .bind(LEASE_NAME)
            .bind(&self.holder)
            .bind(token)
            .fetch_optional(&self.db.pool)
            .await?;
        if row.is_some() && self.fence.token() == Some(token) {
            self.fence.set(Some(Held {
                token,
                deadline: started + self.duration,
            }));
            Ok(true)
        } else {
            self.fence.set(None);
            Ok(false)
        }
    }

    /// Stops leading now (no more writes) without touching the database.
    pub fn step_down(&self) {
        self.fence.set(None);
    }

    /// Gives the lease up (a clean shutdown): a follower takes over at its next attempt
    /// instead of waiting for expiry.
    pub async fn release(&self) -> Result<()> {
        let token = self.fence.token();
        self.fence.set(None);
        let Some(token) = token else {
            return Ok(());
        };
        let sql = format!(
            "UPDATE leader_lease SET expires_ms = {} WHERE name = $1 AND holder = $2 AND token = $3",
            now_sql(self.db.backend)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(LEASE_NAME)
            .bind(&self.holder)
            .bind(token)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}

/// A leadership change, for the caller to report.
#[derive(Debug, Clone)]
pub enum Event {
    /// This process took the lease.
    Leading(LeaseInfo),
    /// Another process leads; this one waits (reported once per leader).
    Following(LeaseInfo),
    /// This process lost the lease and stopped its work.
    SteppedDown { token: i64, why: String },
    /// The database could not be reached for the lease.
    Unreachable(String),
}

/// Runs `work` whenever this process holds the lease, until `shutdown` turns true.
///
/// `work` gets the fenced database and a stop signal; it must return soon after the signal.
/// While it runs, the lease is renewed every third of its duration. When the lease is lost
/// (renewal refused, not renewed in time, or a fenced write refused), the fence refuses every
/// write at once, the work is told to stop, and this process goes back to following. On
/// shutdown the work finishes (still fenced, still renewing) and the lease is released.
pub async fn lead<F, Fut>(
    elector: Arc<Elector>,
    mut shutdown: watch::Receiver<bool>,
    mut on_event: impl FnMut(Event) + Send,
    mut work: F,
) -> Result<()>
where
    F: FnMut(Db, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let third = elector.duration / 3;
    let mut last_follow: Option<(String, i64)> = None;
    let mut unreachable = false;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        // Following: try to take the lease; wait until it should have run out, at most a third
        // of a lease (a leader renews that often, so its row tells the truth by then).
        let wait = match tokio::time::timeout(elector.duration, elector.try_acquire()).await {
            Ok(Ok(Acquired::Won(info))) => {
                unreachable = false;
                last_follow = None;
                on_event(Event::Leading(info.clone()));
                match lead_term(&elector, &mut shutdown, &mut on_event, &mut work, info).await? {
                    TermEnd::Shutdown => return Ok(()),
                    TermEnd::Lost => Duration::ZERO,
                }
            }
            Ok(Ok(Acquired::Held(info))) => {
                unreachable = false;
                let key = (info.holder.clone(), info.token);
                if last_follow.as_ref() != Some(&key) && info.is_live() {
                    on_event(Event::Following(info.clone()));
                    last_follow = Some(key);
                }
                let left = u64::try_from(info.expires_ms - info.db_now_ms).unwrap_or(0);
                Duration::from_millis(left.clamp(20, third.as_millis() as u64))
            }
            Ok(Err(e)) => {
                if !unreachable {
                    on_event(Event::Unreachable(e.to_string()));
                    unreachable = true;
                }
                third
            }
            Err(_) => {
                if !unreachable {
                    on_event(Event::Unreachable(format!(
                        "no answer within {} ms",
                        elector.duration.as_millis()
                    )));
                    unreachable = true;
                }
                third
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

enum TermEnd {
    Shutdown,
    Lost,
}

async fn lead_term<F, Fut>(
    elector: &Arc<Elector>,
    shutdown: &mut watch::Receiver<bool>,
    on_event: &mut (impl FnMut(Event) + Send),
    work: &mut F,
    info: LeaseInfo,
) -> Result<TermEnd>
where
    F: FnMut(Db, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let third = elector.duration / 3;
    let fence = elector.fence.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut task = tokio::spawn(work(elector.fenced_db(), stop_rx));
    let mut next_renew = Instant::now() + third;
    let mut stopping = false;
    let mut lost: Option<String> = None;
    loop {
        // The local deadline of the lease: past it, nothing may be written any more.
        let deadline = fence.held.lock().ok().and_then(|h| *h).map(|h| h.deadline);
        let Some(deadline) = deadline else {
            lost.get_or_insert_with(|| "a write was refused: the lease is gone".into());
            break;
        };
        tokio::select! {
            r = &mut task => {
                let r = r.map_err(|e| Error::Other(format!("the monitor's work failed: {e}")));
                if let Err(e) = elector.release().await {
                    tracing::warn!(error = %e, "releasing the leader lease failed");
                }
                return match r {
                    Ok(Ok(())) if stopping => Ok(TermEnd::Shutdown),
                    Ok(Ok(())) => Err(Error::Other("the monitor's work ended by itself".into())),
                    Ok(Err(e)) | Err(e) => Err(e),
                };
            }
            _ = tokio::time::sleep_until(next_renew) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, elector.renew()).await {
                    Ok(Ok(true)) => next_renew = Instant::now() + third,
                    Ok(Ok(false)) => {
                        lost = Some("the lease expired or was taken over".into());
                        break;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "renewing the leader lease failed; retrying");
                        next_renew = Instant::now() + (third / 4).max(Duration::from_millis(50));
                    }
                    Err(_) => {
                        lost = Some("the lease could not be renewed before it ran out".into());
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                lost = Some("the lease could not be renewed before it ran out".into());
                break;
            }
            _ = fence.lost.notified() => {
                // A permit left by a refusal of an earlier term is stale: check the fence.
                if fence.token().is_none() {
                    lost = Some("a write was refused: the lease expired or was taken over".into());
                    break;
                }
            }
            changed = shutdown.changed(), if !stopping => {
                if changed.is_err() || *shutdown.borrow() {
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
    // Lost: no more writes (the fence refuses them from now on), stop the work, follow again.
    elector.step_down();
    let _ = stop_tx.send(true);
    let why = lost.unwrap_or_default();
    on_event(Event::SteppedDown {
        token: info.token,
        why,
    });
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the monitor's work ended with an error"),
        Err(e) => tracing::warn!(error = %e, "the monitor's work failed"),
    }
    if stopping {
        return Ok(TermEnd::Shutdown);
    }
    Ok(TermEnd::Lost)
}
