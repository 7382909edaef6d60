//! GET response cache: in memory with a TTL (moka), optionally on disk, keyed per URL,
//! relevant request headers and auth identity; honours `Cache-Control: no-store` and
//! revalidates with `ETag` / `Last-Modified`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::Error;
use crate::request::RequestBuilder;
use crate::response::{BodyState, Response};

/// Cache settings.
///
/// ```
/// use std::time::Duration;
/// use opskit_http::CacheConfig;
/// // the seeds' @ttl_cache(seconds=60), plus an on-disk copy that survives restarts
/// let c = CacheConfig::new(Duration::from_secs(60)).dir("/var/cache/opskit");
/// assert_eq!(c.ttl, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long a stored response is served without asking the server.
    pub ttl: Duration,
    /// How long a stale entry with `ETag`/`Last-Modified` is kept for revalidation.
    pub keep_stale: Duration,
    /// Most entries kept in memory.
    pub max_entries: u64,
    /// Optional directory for an on-disk copy.
    pub dir: Option<PathBuf>,
    /// Request headers that are part of the key (besides the URL and auth identity).
    pub vary: Vec<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(60),
            keep_stale: Duration::from_secs(3600),
            max_entries: 10_000,
            dir: None,
            vary: vec![
                "accept".into(),
                "accept-language".into(),
                "accept-encoding".into(),
            ],
        }
    }
}

impl CacheConfig {
    /// A memory cache with this TTL.
    pub fn new(ttl: Duration) -> Self {
        CacheConfig {
            ttl,
            ..CacheConfig::default()
        }
    }
    /// Also store responses under `dir`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
}

/// A stored response.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub url: String,
    /// When the entry was stored or last revalidated (wall clock, for disk entries).
    pub stored_wall: SystemTime,
    /// When the entry was stored or last revalidated (tokio clock, for memory entries).
    pub stored_at: Option<tokio::time::Instant>,
}

impl Entry {
    pub(crate) fn age(&self) -> Duration {
        match self.stored_at {
            Some(at) => at.elapsed(),
            None => SystemTime::now()
                .duration_since(self.stored_wall)
                .unwrap_or_default(),
        }
    }
    pub(crate) fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(http::header::ETAG)
    }
    pub(crate) fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(http::header::LAST_MODIFIED)
    }
    fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }
}

#[derive(Serialize, Deserialize)]
struct DiskMeta {
    status: u16,
    headers: Vec<(String, String)>,
    url: String,
    stored_unix: u64,
}

pub(crate) struct Cache {
    cfg: CacheConfig,
    mem: moka::future::Cache<String, Arc<Entry>>,
}

struct EntryExpiry {
    ttl: Duration,
    keep_stale: Duration,
}

impl moka::Expiry<String, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(if value.has_validator() {
            self.ttl + self.keep_stale
        } else {
            self.ttl
        })
    }
    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<Entry>,
        updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

impl Cache {
    pub(crate) fn new(cfg: CacheConfig) -> Self {
        let mem = moka::future::Cache::builder()
            .max_capacity(cfg.max_entries)
            .expire_after(EntryExpiry {
                ttl: cfg.ttl,
                keep_stale: cfg.keep_stale,
            })
            .build();
        Cache { cfg, mem }
    }

    /// The key for a GET of `url` with these request headers by this identity.
    pub(crate) fn key(&self, url: &str, headers: &HeaderMap, identity: &str) -> String {
        let mut h = sha2::Sha256::new();
        h.update(b"GET\n");
        h.update(url.as_bytes());
        h.update(b"\n");
        for name in &self.cfg.vary {
            h.update(name.as_bytes());
            h.update(b":");
            for v in headers.get_all(name.as_str()) {
                h.update(v.as_bytes());
                h.update(b",");
            }
            h.update(b"\n");
        }
        // credentials set per request are part of the identity too
        let mut secret_headers: Vec<(&str, &[u8])> = headers
            .iter()
            .filter(|(k, _)| crate::observe::is_sensitive_header(k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        secret_headers.sort();
        for (k, v) in secret_headers {
            h.update(k.as_bytes());
            h.update(b":");
            h.update(v);
            h.update(b"\n");
        }
        h.update(b"identity:");
        h.update(identity.as_bytes());
        hex::encode(h.finalize())
    }

    /// A stored entry (fresh or stale).
    pub(crate) async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(e) = self.mem.get(key).await {
            return Some(e);
        }
        let dir = self.cfg.dir.as_ref()?;
        let e = Arc::new(read_disk(dir, key).await?);
        let age = e.age();
        if age >= self.cfg.ttl && !(e.has_validator() && age < self.cfg.ttl + self.cfg.keep_stale) {
            return None;
        }
        self.mem.insert(key.to_string(), e.clone()).await;
        Some(e)
    }

    pub(crate) fn is_fresh(&self, e: &Entry) -> bool {
        e.age() < self.cfg.ttl
    }

    /// Stores a new response, body and all.
    pub(crate) async fn put(&self, key: &str, entry: Entry) {
        self.store(key, entry, true).await;
    }

    /// Stores an entry a 304 revalidated: its body is the one already stored, so only its
    /// headers and time are written (a large body is not copied to disk again).
    pub(crate) async fn refresh(&self, key: &str, entry: Entry) {
        self.store(key, entry, false).await;
    }

    async fn store(&self, key: &str, entry: Entry, with_body: bool) {
        let entry = Arc::new(entry);
        if let Some(dir) = &self.cfg.dir
            && let Err(e) = write_disk(dir, key, &entry, with_body).await
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the on-disk HTTP cache");
        }
        self.mem.insert(key.to_string(), entry).await;
    }

    pub(crate) async fn remove(&self, key: &str) {
        self.mem.invalidate(key).await;
        if let Some(dir) = &self.cfg.dir {
            let _ = tokio::fs::remove_file(dir.join(format!("{key}.json"))).await;
            let _ = tokio::fs::remove_file(dir.join(format!("{key}.body"))).await;
        }
    }
}

/// Whether a response may be stored.
pub(crate) fn storable(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::OK {
        return false;
    }
    !headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
        })
}

/// Whether the request asks not to use the cache.
pub(crate) fn request_bypasses(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|d| {
                let d = d.trim();
                d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache")
            })
        })
}

async fn read_disk(dir: &Path, key: &str) -> Option<Entry> {
    let meta = tokio::fs::read(dir.join(format!("{key}.json")))
        .await
        .ok()?;
    let meta: DiskMeta = serde_json::from_slice(&meta).ok()?;
    let body = tokio::fs::read(dir.join(format!("{key}.body")))
        .await
        .ok()?;
    let mut headers = HeaderMap::new();
    for (k, v) in meta.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    Some(Entry {
        status: StatusCode::from_u16(meta.status).ok()?,
        headers,
        body: Bytes::from(body),
        url: meta.url,
        stored_wall: UNIX_EPOCH + Duration::from_secs(meta.stored_unix),
        stored_at: None,
    })
}

/// Cached bodies may be answers to authenticated requests (a token, a secret from Vault): the
/// directories the cache creates are its owner's only (0700), and so is every file (0600).
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = tokio::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(0o700);
    b.create(dir).await
}

async fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut o = tokio::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).await?;
    f.write_all(data).await?;
    f.flush().await
}

/// Writes the entry's metadata, and its body unless `with_body` is false (the body file on disk
/// is then the one of the same entry, kept).
async fn write_disk(dir: &Path, key: &str, e: &Entry, with_body: bool) -> std::io::Result<()> {
    create_private_dir(dir).await?;
    let meta = DiskMeta {
        status: e.status.as_u16(),
        headers: e
            .headers
            .iter()
            .filter(|(k, _)| !crate::observe::is_sensitive_header(k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        url: e.url.clone(),
        stored_unix: e
            .stored_wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    };
    let meta = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
    if with_body {
        let tmp_body = dir.join(format!("{key}.body.tmp{}", std::process::id()));
        write_private(&tmp_body, &e.body).await?;
        tokio::fs::rename(&tmp_body, dir.join(format!("{key}.body"))).await?;
    }
    let tmp_meta = dir.join(format!("{key}.json.tmp{}", std::process::id()));
    write_private(&tmp_meta, &meta).await?;
    tokio::fs::rename(&tmp_meta, dir.join(format!("{key}.json"))).await?;
    Ok(())
}

impl Client {
    /// Back in the cache layer after the request: a 304 refreshes the stale entry and answers
    /// from it, a storable response is stored (its body read whole), `no-store` drops the entry.
    pub(crate) async fn cache_write_back(
        &self,
        c: &Cache,
        key: &str,
        stale: Option<Arc<Entry>>,
        rb: &RequestBuilder,
        resp: Response,
    ) -> Result<Response, Error> {
        if resp.status == StatusCode::NOT_MODIFIED
            && let Some(e) = stale
        {
            let mut fresh = (*e).clone();
            for (k, v) in resp.headers.iter() {
                if k != http::header::CONTENT_LENGTH {
                    fresh.headers.insert(k.clone(), v.clone());
                }
            }
            fresh.stored_at = Some(Instant::now());
            fresh.stored_wall = SystemTime::now();
            let attempts = resp.attempts;
            let out = self.cached_response(rb, &fresh, attempts)?;
            c.refresh(key, fresh).await;
            return Ok(out);
        }
        if storable(resp.status, &resp.headers) {
            let status = resp.status;
            let headers = resp.headers.clone();
            let version = resp.version;
            let final_url = resp.url.clone();
            let shown = resp.shown_url.clone();
            let deadline = resp.deadline;
            let attempts = resp.attempts;
            let body = resp.bytes().await?;
            c.put(
                key,
                Entry {
                    status,
                    headers: headers.clone(),
                    body: body.clone(),
                    url: final_url.to_string(),
                    stored_wall: SystemTime::now(),
                    stored_at: Some(Instant::now()),
                },
            )
            .await;
            return Ok(Response {
                status,
                headers,
                version,
                url: final_url,
                shown_url: shown,
                body: BodyState::Buffered(body),
                deadline,
                timeouts: self.config().timeouts,
                from_cache: false,
                attempts,
                max_body: self.config().max_body,
            });
        } else if resp
            .headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.contains("no-store")))
        {
            c.remove(key).await;
        }
        Ok(resp)
    }
}
