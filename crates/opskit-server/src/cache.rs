//! A read-through cache of rendered server responses (the JSON body and its ETag, or a list page
//! and its `Link` header), filled on read and emptied by every server write.
//!
//! On SQLite this process is the only writer: every write it makes empties the cache. On
//! PostgreSQL other replicas (or an admin's `psql`) write too: a trigger on the `servers` table
//! calls `pg_notify` in the writing transaction, and every replica holds a dedicated `LISTEN`
//! connection ([`crate::store::notify`]) that drops the changed server (and every list page) as
//! the notification arrives, which PostgreSQL sends only when the write commits. While that
//! connection is down the cache is off (and empty): every read goes to the database until the
//! listener is back and has re-subscribed, and the cache is emptied again before it is used.
//!
//! A fill that started before a write finished is dropped: readers note the generation before
//! going to the database and only store their result if no write bumped it in the meantime.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::HeaderValue;
use uuid::Uuid;

use crate::store::ServerRef;

/// Most entries of each kind kept; past that the cache starts over (writes empty it anyway).
const MAX_SERVERS: usize = 50_000;
const MAX_PAGES: usize = 2_000;

/// One rendered response.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    /// `ETag` for one server, `Link` for a list page.
    pub header: Option<HeaderValue>,
}

#[derive(Default)]
struct Inner {
    /// By id, with the hostname it is also stored under (to drop both on a notification).
    by_id: HashMap<Uuid, (Box<str>, Arc<Rendered>)>,
    by_host: HashMap<String, Arc<Rendered>>,
    pages: HashMap<String, Arc<Rendered>>,
}

/// The cache; see the module docs for how it stays correct.
pub struct ServerCache {
    inner: RwLock<Inner>,
    generation: AtomicU64,
    /// Off while the invalidation feed is down: nothing is served or stored.
    enabled: AtomicBool,
    /// Whether invalidation depends on a notification feed (PostgreSQL).
    replicated: bool,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    /// Times the notification connection was lost.
    feed_losses: AtomicU64,
}

impl Default for ServerCache {
    /// The cache of the only writer (SQLite): on from the start.
    fn default() -> Self {
        ServerCache::new(false)
    }
}

impl std::fmt::Debug for ServerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCache")
    }
}

/// A ticket taken before reading the database; a fill with a stale ticket is ignored.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl ServerCache {
    /// A cache whose invalidation comes from a notification feed (PostgreSQL): off until the
    /// feed reports [`ServerCache::feed_up`].
    pub fn replicated() -> Self {
        ServerCache::new(true)
    }

    fn new(replicated: bool) -> Self {
        ServerCache {
            inner: RwLock::default(),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(!replicated),
            replicated,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            feed_losses: AtomicU64::new(0),
        }
    }

    /// Whether reads are served from (and stored in) the cache right now.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Take before reading the database.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    fn count(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn server(&self, r: &ServerRef) -> Option<Arc<Rendered>> {
        let inner = self.inner.read().ok()?;
        if !self.enabled() {
            return None;
        }
        let found = match r {
            ServerRef::Id(id) => inner.by_id.get(id).map(|(_, v)| Arc::clone(v)),
            ServerRef::Hostname(h) => inner.by_host.get(h.as_str()).cloned(),
        };
        self.count(found.is_some());
        found
    }

    /// Stores one server's rendering under its id and hostname.
    pub fn fill_server(&self, ticket: Ticket, id: Uuid, hostname: &str, value: Rendered) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if !self.enabled() || self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if inner.by_id.len() >= MAX_SERVERS {
            inner.by_id.clear();
            inner.by_host.clear();
        }
        let value = Arc::new(value);
        inner
            .by_host
            .insert(hostname.to_owned(), Arc::clone(&value));
        inner.by_id.insert(id, (hostname.into(), value));
    }

    /// A list page, by its canonical query.
    pub fn page(&self, key: &str) -> Option<Arc<Rendered>> {
        let inner = self.inner.read().ok()?;
        if !self.enabled() {
            return None;
        }
        let found = inner.pages.get(key).cloned();
        self.count(found.is_some());
        found
    }

    pub fn fill_page(&self, ticket: Ticket, key: String, value: Rendered) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if !self.enabled() || self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if inner.pages.len() >= MAX_PAGES {
            inner.pages.clear();
        }
        inner.pages.insert(key, Arc::new(value));
    }

    /// Forgets everything; call after every write to the servers table (whatever its outcome).
    pub fn invalidate(&self) {
        self.forget(None);
    }

    /// A change notification from the database: the payload is the changed server's id, or
    /// anything else (`*` after a TRUNCATE) to forget everything. Every list page goes either
    /// way, since a change to any server can change any page.
    pub fn notified(&self, payload: &str) {
        self.forget(Uuid::parse_str(payload).ok());
    }

    fn forget(&self, id: Option<Uuid>) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        let mut inner = match self.inner.write() {
            Ok(inner) => inner,
            Err(poisoned) => {
                let mut inner = poisoned.into_inner();
                *inner = Inner::default();
                inner
            }
        };
        // under the write lock: a fill either happened before (and is removed here) or sees the
        // new generation and is dropped
        self.generation.fetch_add(1, Ordering::AcqRel);
        match id {
            Some(id) => {
                if let Some((host, _)) = inner.by_id.remove(&id) {
                    inner.by_host.remove(&*host);
                }
                inner.pages.clear();
            }
            None => {
                inner.by_id.clear();
                inner.by_host.clear();
                inner.pages.clear();
            }
        }
    }

    /// The notification feed is listening (again): empty the cache, then use it.
    pub fn feed_up(&self) {
        self.forget(None);
        self.enabled.store(true, Ordering::Release);
    }

    /// The notification feed is lost: stop using the cache at once and empty it.
    pub fn feed_down(&self) {
        self.enabled.store(false, Ordering::Release);
        self.feed_losses.fetch_add(1, Ordering::Relaxed);
        self.forget(None);
    }

    /// Prometheus text of the cache's state, appended to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        let counters = [
            (
                "opskit_server_cache_hits_total",
                "Server reads answered from the cache.",
                &self.hits,
            ),
            (
                "opskit_server_cache_misses_total",
                "Server reads the cache could not answer (it was on).",
                &self.misses,
            ),
            (
                "opskit_server_cache_invalidations_total",
                "Writes and change notifications that emptied cache entries.",
                &self.invalidations,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP opskit_server_cache_enabled Whether reads use the server cache now (0 while the PostgreSQL notification connection is down).\n# TYPE opskit_server_cache_enabled gauge\nopskit_server_cache_enabled {}",
            u8::from(self.enabled())
        );
        if self.replicated {
            let _ = writeln!(
                out,
                "# HELP opskit_server_cache_listener_up Whether the PostgreSQL LISTEN connection that keeps the cache coherent is subscribed.\n# TYPE opskit_server_cache_listener_up gauge\nopskit_server_cache_listener_up {}",
                u8::from(self.enabled())
            );
            let _ = writeln!(
                out,
                "# HELP opskit_server_cache_listener_losses_total Times the PostgreSQL LISTEN connection was lost (the cache was off until it was back).\n# TYPE opskit_server_cache_listener_losses_total counter\nopskit_server_cache_listener_losses_total {}",
                self.feed_losses.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(s: &'static str) -> Rendered {
        Rendered {
            body: Bytes::from_static(s.as_bytes()),
            header: None,
        }
    }

    #[test]
    fn a_fill_that_raced_a_write_is_dropped() {
        let c = ServerCache::default();
        let id = Uuid::now_v7();
        let t = c.ticket();
        c.invalidate();
        c.fill_server(t, id, "a", rendered("old"));
        assert!(c.server(&ServerRef::Id(id)).is_none());
        let t = c.ticket();
        c.fill_server(t, id, "a", rendered("new"));
        assert_eq!(
            c.server(&ServerRef::Hostname("a".into()))
                .map(|r| r.body.clone()),
            Some(Bytes::from_static(b"new"))
        );
        c.invalidate();
        assert!(c.server(&ServerRef::Id(id)).is_none());
    }

    #[test]
    fn a_notification_drops_that_server_under_both_names_and_every_page() {
        let c = ServerCache::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t = c.ticket();
        c.fill_server(t, a, "a", rendered("a1"));
        c.fill_server(t, b, "b", rendered("b1"));
        c.fill_page(t, "p1".into(), rendered("page"));
        c.notified(&a.to_string());
        assert!(c.server(&ServerRef::Id(a)).is_none());
        assert!(c.server(&ServerRef::Hostname("a".into())).is_none());
        assert!(c.page("p1").is_none());
        assert!(c.server(&ServerRef::Id(b)).is_some());
        c.notified("*");
        assert!(c.server(&ServerRef::Hostname("b".into())).is_none());
    }

    #[test]
    fn a_replicated_cache_is_off_until_its_feed_is_up_and_off_again_when_lost() {
        let c = ServerCache::replicated();
        let id = Uuid::now_v7();
        c.fill_server(c.ticket(), id, "a", rendered("x"));
        assert!(
            c.server(&ServerRef::Id(id)).is_none(),
            "filled before the feed"
        );
        // a read that started before the feed came up must not land afterwards
        let early = c.ticket();
        c.feed_up();
        c.fill_server(early, id, "a", rendered("old"));
        assert!(c.server(&ServerRef::Id(id)).is_none());
        c.fill_server(c.ticket(), id, "a", rendered("new"));
        assert!(c.server(&ServerRef::Id(id)).is_some());
        // lost: off and empty at once, and a read in flight is not stored
        let in_flight = c.ticket();
        c.feed_down();
        assert!(!c.enabled());
        assert!(c.server(&ServerRef::Id(id)).is_none());
        c.fill_server(in_flight, id, "a", rendered("stale"));
        c.fill_server(c.ticket(), id, "a", rendered("stale"));
        c.feed_up();
        assert!(c.server(&ServerRef::Id(id)).is_none(), "emptied when back");
        let mut m = String::new();
        c.render_metrics(&mut m);
        assert!(m.contains("opskit_server_cache_listener_up 1\n"), "{m}");
        assert!(
            m.contains("opskit_server_cache_listener_losses_total 1\n"),
            "{m}"
        );
    }
}
