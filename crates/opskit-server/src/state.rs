//! The shared state of the running API: the database, the settings and everything built from
//! them once at start (JWT keys, limiters, caches, metrics).

use std::sync::Arc;

use secrecy::SecretString;

use crate::Error;
use crate::auth::{JwtKeys, TokenCache, random_token};
use crate::cache::ServerCache;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::middleware::Limiter;
use crate::store::{Db, Store};
use crate::throttle::Throttle;

struct Inner {
    db: Db,
    config: ServerConfig,
    jwt: JwtKeys,
    limiter: Option<Limiter>,
    throttle: Option<Throttle>,
    metrics: Metrics,
    server_cache: Option<Arc<ServerCache>>,
    tokens: TokenCache,
    /// Route → its methods, for the detail of a 405.
    allowed: std::collections::HashMap<String, String>,
    /// The monitor engine, when `opskit serve` runs it (`--monitor`, `--monitor-config`).
    monitor: Option<opskit_monitor::service::Service>,
}

/// Shared state of the running API.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.0.db)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state; the JWT secret comes from the config or, failing that, from the
    /// database (generated on first use, so tokens survive restarts and are shared by replicas).
    pub async fn new(db: Db, config: ServerConfig) -> Result<AppState, Error> {
        AppState::with_monitor(db, config, None).await
    }

    /// [`AppState::new`], with the monitor engine that runs in this process.
    pub async fn with_monitor(
        db: Db,
        config: ServerConfig,
        monitor: Option<opskit_monitor::service::Service>,
    ) -> Result<AppState, Error> {
        let secret = match &config.jwt_secret {
            Some(s) => s.clone(),
            None => SecretString::from(db.init_setting("jwt_secret", &random_token(48)).await?),
        };
        // on by default everywhere: on PostgreSQL every replica's cache follows the others'
        // writes through LISTEN/NOTIFY (and is off while its listener is down)
        let server_cache = match (config.server_cache.unwrap_or(true), &db) {
            (false, _) => None,
            (true, Db::Sqlite(_)) => Some(Arc::new(ServerCache::default())),
            (true, Db::Postgres(pg)) => {
                let cache = Arc::new(ServerCache::replicated());
                crate::store::notify::start(pg.pool(), &cache).await;
                Some(cache)
            }
        };
        Ok(AppState(Arc::new(Inner {
            jwt: JwtKeys::new(&secret, config.access_token_ttl),
            limiter: Limiter::per_minute(config.rate_limit_per_minute),
            throttle: Throttle::per_minute(config.login_rate_limit_per_minute),
            metrics: Metrics::default(),
            server_cache,
            tokens: TokenCache::default(),
            allowed: allowed_methods(&crate::app::openapi()),
            monitor,
            db,
            config,
        })))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }
    /// The monitor engine, when this server runs it.
    pub fn monitor(&self) -> Option<&opskit_monitor::service::Service> {
        self.0.monitor.as_ref()
    }
    pub fn jwt(&self) -> &JwtKeys {
        &self.0.jwt
    }
    pub fn limiter(&self) -> Option<&Limiter> {
        self.0.limiter.as_ref()
    }
    /// The guessing throttle in front of every password and API-key check.
    pub fn throttle(&self) -> Option<&Throttle> {
        self.0.throttle.as_ref()
    }
    /// Access tokens already verified.
    pub fn tokens(&self) -> &TokenCache {
        &self.0.tokens
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    /// The response cache, when on (see [`ServerCache`]).
    pub fn server_cache(&self) -> Option<&ServerCache> {
        self.0.server_cache.as_deref()
    }
    /// The methods a route answers (`GET, HEAD, POST`), for the detail of a 405.
    pub fn allowed_methods(&self, route: &str) -> Option<&str> {
        self.0.allowed.get(route).map(String::as_str)
    }
    /// Call after every write to the servers table, whatever its outcome.
    pub fn servers_changed(&self) {
        if let Some(c) = self.server_cache() {
            c.invalidate();
        }
        // inventory-driven monitors follow the servers now, not at the next refresh
        if let Some(m) = self.monitor() {
            m.refresh_now();
        }
    }
}

fn allowed_methods(doc: &utoipa::openapi::OpenApi) -> std::collections::HashMap<String, String> {
    doc.paths
        .paths
        .iter()
        .map(|(path, item)| {
            let mut methods = Vec::new();
            if item.get.is_some() {
                methods.extend(["GET", "HEAD"]);
            }
            for (op, name) in [
                (&item.post, "POST"),
                (&item.put, "PUT"),
                (&item.patch, "PATCH"),
                (&item.delete, "DELETE"),
            ] {
                if op.is_some() {
                    methods.push(name);
                }
            }
            (path.clone(), methods.join(", "))
        })
        .collect()
}
