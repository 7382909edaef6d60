//! The PostgreSQL side of the server cache's coherence: a dedicated connection that `LISTEN`s on
//! [`CHANNEL`], where the `servers` table's trigger (migration `servers_notify`) announces every
//! committed change, and drops the changed server from this process's [`ServerCache`].
//!
//! The cache is only on while that connection is subscribed. When it drops (the server restarts,
//! an admin terminates it, the network fails, a keep-alive query gets no answer within
//! [`PING_TIMEOUT`]) the cache is switched off and emptied at once; reconnection is attempted with
//! a backoff (each attempt bounded by [`ATTEMPT_TIMEOUT`]), and once `LISTEN` is in place again
//! the cache is emptied once more and switched back on. Each transition is logged.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use crate::cache::ServerCache;

/// The notification channel of server changes.
pub const CHANNEL: &str = "opskit_servers";
/// `application_name` of the listening connection (visible in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "opskit-cache-listener";
/// Longest one connect-and-subscribe attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// After this long without a notification, a keep-alive query checks the connection.
pub const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest the keep-alive query may take before the connection counts as lost.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Subscribes once (so a process that can reach its database starts with the cache on), then
/// keeps the subscription in a background task that lives as long as `cache` does.
pub async fn start(pool: &PgPool, cache: &Arc<ServerCache>) {
    let opts = pool
        .connect_options()
        .as_ref()
        .clone()
        .application_name(APPLICATION_NAME);
    // its own small pool (PgListener reconnects through one): never competes with requests
    let own = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(ATTEMPT_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(opts);
    let listener = match subscribe(&own).await {
        Ok(l) => {
            cache.feed_up();
            tracing::info!(
                channel = CHANNEL,
                "server cache on: listening for changes made by other replicas"
            );
            Some(l)
        }
        Err(e) => {
            tracing::warn!(error = %e, "server cache off until the PostgreSQL LISTEN connection is up: {e}");
            None
        }
    };
    tokio::spawn(run(own, listener, Arc::downgrade(cache)));
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, String> {
    let attempt = async {
        let mut l = PgListener::connect_with(pool).await?;
        // a lost connection is reported to us (Ok(None)), never silently re-made
        l.eager_reconnect(false);
        l.ignore_pool_close_event(true);
        l.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(l)
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
    }
}

/// What one wait on the connection gave.
enum Event {
    Changed(String),
    Lost(String),
    Quiet,
}

async fn next(l: &mut PgListener) -> Event {
    match tokio::time::timeout(PING_EVERY, l.try_recv()).await {
        Ok(Ok(Some(n))) => Event::Changed(n.payload().to_owned()),
        Ok(Ok(None)) => Event::Lost("connection closed".into()),
        Ok(Err(e)) => Event::Lost(e.to_string()),
        Err(_) => {
            match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *l)).await
            {
                Ok(Ok(_)) => Event::Quiet,
                Ok(Err(e)) => Event::Lost(format!("keep-alive query failed: {e}")),
                Err(_) => Event::Lost(format!(
                    "no answer to a keep-alive query within {} s",
                    PING_TIMEOUT.as_secs()
                )),
            }
        }
    }
}

async fn run(own: PgPool, mut listener: Option<PgListener>, cache: Weak<ServerCache>) {
    let mut backoff = BACKOFF_MIN;
    let mut failed_attempts = 0u32;
    loop {
        match listener.as_mut() {
            Some(l) => match next(l).await {
                Event::Changed(payload) => match cache.upgrade() {
                    Some(c) => c.notified(&payload),
                    None => break,
                },
                Event::Quiet if cache.strong_count() == 0 => break,
                Event::Quiet => {}
                Event::Lost(why) => {
                    listener = None;
                    let Some(c) = cache.upgrade() else { break };
                    c.feed_down();
                    tracing::warn!(reason = %why, "server cache off: lost the PostgreSQL LISTEN connection ({why}); reads go to the database until it is back");
                    backoff = BACKOFF_MIN;
                    failed_attempts = 0;
                }
            },
            None => {
                tokio::time::sleep(backoff).await;
                if cache.strong_count() == 0 {
                    break;
                }
                match subscribe(&own).await {
                    Ok(l) => {
                        let Some(c) = cache.upgrade() else { break };
                        c.feed_up();
                        listener = Some(l);
                        tracing::info!(
                            failed_attempts,
                            "server cache on again: the PostgreSQL LISTEN connection is back"
                        );
                    }
                    Err(e) => {
                        failed_attempts += 1;
                        // the first failure and then about one a minute, not one every 5 s
                        if failed_attempts == 1 || failed_attempts.is_multiple_of(12) {
                            tracing::warn!(error = %e, failed_attempts, "server cache still off: cannot re-subscribe to PostgreSQL notifications: {e}");
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(PING_TIMEOUT, own.close()).await;
}
