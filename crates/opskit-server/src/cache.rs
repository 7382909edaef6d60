//! A read-through cache of rendered server responses (the JSON body and its ETag, or a list page
//! and its `Link` header), filled on read and emptied by every server write made by this process.
//!
//! Only correct when this process is the only writer of the `servers` table: on by default for
//! SQLite (one file, one server), off by default for PostgreSQL (several replicas may write).
//!
//! A fill that started before a write finished is dropped: readers note the generation before
//! going to the database and only store their result if no write bumped it in the meantime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    by_id: HashMap<Uuid, Arc<Rendered>>,
    by_host: HashMap<String, Arc<Rendered>>,
    pages: HashMap<String, Arc<Rendered>>,
}

/// The cache; see the module docs for when it is safe.
#[derive(Default)]
pub struct ServerCache {
    inner: RwLock<Inner>,
    generation: AtomicU64,
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
    /// Take before reading the database.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    pub fn server(&self, r: &ServerRef) -> Option<Arc<Rendered>> {
        let inner = self.inner.read().ok()?;
        match r {
            ServerRef::Id(id) => inner.by_id.get(id).cloned(),
            ServerRef::Hostname(h) => inner.by_host.get(h.as_str()).cloned(),
        }
    }

    /// Stores one server's rendering under its id and hostname.
    pub fn fill_server(&self, ticket: Ticket, id: Uuid, hostname: &str, value: Rendered) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != ticket.0 {
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
        inner.by_id.insert(id, value);
    }

    /// A list page, by its canonical query.
    pub fn page(&self, key: &str) -> Option<Arc<Rendered>> {
        self.inner.read().ok()?.pages.get(key).cloned()
    }

    pub fn fill_page(&self, ticket: Ticket, key: String, value: Rendered) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if inner.pages.len() >= MAX_PAGES {
            inner.pages.clear();
        }
        inner.pages.insert(key, Arc::new(value));
    }

    /// Forgets everything; call after every write to the servers table (whatever its outcome).
    pub fn invalidate(&self) {
        match self.inner.write() {
            Ok(mut inner) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                inner.by_id.clear();
                inner.by_host.clear();
                inner.pages.clear();
            }
            Err(poisoned) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                let mut inner = poisoned.into_inner();
                *inner = Inner::default();
            }
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
}
