//! `opskit monitor run`: the daemon, and its heartbeat receiver (`POST /heartbeat/<token>`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::Args;
use opskit_monitor::check::Checker;
use opskit_monitor::config::Check;
use opskit_monitor::lease;
use opskit_monitor::scheduler::{self, Stats};
use opskit_monitor::store::Db;
use tokio::sync::watch;

use super::{database_url, load, open_db};
use crate::exit::{Failure, code};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (reloaded on SIGHUP or when it changes).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Database URL: sqlite://PATH (default: monitor.db in the user's data directory) or
    /// postgres://…
    #[arg(long, value_name = "URL", env = "OPSKIT_MONITOR_DATABASE")]
    pub database: Option<String>,
    /// Address for POST /heartbeat/<token> and GET /metrics (overrides settings.listen), e.g.
    /// 127.0.0.1:9464. Without one, neither is served.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The leader lease (several instances on one database: one leads, the others take over
    /// when its lease runs out). Renewed every third of it; at least 1s.
    #[arg(long, value_name = "DURATION", env = "OPSKIT_MONITOR_LEASE", default_value = "15s",
          value_parser = crate::duration::parse_duration)]
    pub lease: Duration,
}

#[derive(Clone)]
struct Receiver {
    checker: Arc<Checker>,
    db: Db,
    tokens: Arc<RwLock<HashSet<String>>>,
    stats: Arc<Stats>,
    config: watch::Receiver<Arc<opskit_monitor::Config>>,
}

/// `GET /metrics`: Prometheus text format (see `opskit_monitor::metrics`).
async fn metrics(State(r): State<Receiver>) -> impl axum::response::IntoResponse {
    let cfg = r.config.borrow().clone();
    let stats = r.stats.clone();
    // Sorting the lateness sample may take a while with many monitors: off the reactor.
    let body = tokio::task::spawn_blocking(move || opskit_monitor::metrics::render(&cfg, &stats))
        .await
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

fn tokens(cfg: &opskit_monitor::Config) -> HashSet<String> {
    cfg.monitors
        .iter()
        .filter_map(|m| match &m.check {
            Check::Heartbeat { token, .. } => Some(token.clone()),
            _ => None,
        })
        .collect()
}

async fn heartbeat(State(r): State<Receiver>, Path(token): Path<String>) -> (StatusCode, String) {
    let known = r.tokens.read().map(|t| t.contains(&token)).unwrap_or(false);
    if !known {
        return (
            StatusCode::NOT_FOUND,
            "{\"error\":\"unknown token\"}\n".into(),
        );
    }
    r.checker.ping(&token);
    if let Err(e) = r.db.store_heartbeat(&token, opskit_monitor::now_ms()).await {
        tracing::warn!(error = %e, "storing a heartbeat failed");
    }
    (StatusCode::OK, "{\"ok\":true}\n".into())
}

/// Adds the pings stored in the database (by any instance) to the checker's, newest wins.
async fn merge_heartbeats(db: &Db, checker: &Checker) {
    match db.heartbeats().await {
        Ok(pings) => {
            if let Ok(mut h) = checker.heartbeats().lock() {
                for (token, at) in pings {
                    let e = h.entry(token).or_insert(at);
                    *e = (*e).max(at);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading heartbeats failed"),
    }
}

/// Says on stderr what the leader election does.
fn report(event: lease::Event) {
    match event {
        lease::Event::Leading(l) => eprintln!(
            "opskit monitor: leading (fencing token {}): this instance runs the checks and sends the alerts",
            l.token
        ),
        lease::Event::Following(l) => eprintln!(
            "opskit monitor: following {} (fencing token {}): standing by, taking over if its lease runs out",
            l.holder, l.token
        ),
        lease::Event::SteppedDown { token, why } => eprintln!(
            "opskit monitor: stepped down (fencing token {token}): {why}; this instance no longer checks or alerts"
        ),
        lease::Event::Unreachable(e) => {
            eprintln!("opskit monitor: the leader lease cannot be read or taken: {e}")
        }
    }
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl RunArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        crate::logging::init(crate::logging::LogFormat::Text, "info");
        if self.lease < lease::MIN_LEASE || self.lease > Duration::from_secs(3600) {
            return Err(Failure::usage(format!(
                "--lease {:?}: give a lease between 1s and 1h",
                self.lease
            ))
            .into());
        }
        let cfg = load(&self.config)?;
        let url = database_url(self.database.clone(), Some(&cfg))?;
        let listen = self.listen.clone().or_else(|| cfg.settings.listen.clone());
        crate::block_on(self.daemon(cfg, url, listen))?
    }

    async fn daemon(
        self,
        cfg: opskit_monitor::Config,
        url: String,
        listen: Option<String>,
    ) -> anyhow::Result<u8> {
        let db = open_db(&url).await?;
        let checker = Arc::new(Checker::default());
        merge_heartbeats(&db, &checker).await;
        let token_set = Arc::new(RwLock::new(tokens(&cfg)));
        let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
        let (stop_tx, stop_rx) = watch::channel(false);

        let stats = Arc::new(Stats::default());
        if let Err(e) = stats.monitors.seed_from(&db).await {
            tracing::warn!(error = %e, "reading the monitors' state for /metrics failed");
        }

        // The heartbeat receiver and /metrics.
        let server = match listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
                    Failure::new(code::FAILURE, format!("cannot listen on {addr}: {e}"))
                })?;
                let local = listener.local_addr()?;
                eprintln!(
                    "opskit monitor: listening on http://{local} (POST /heartbeat/<token>, GET /metrics)"
                );
                let app = Router::new()
                    .route("/heartbeat/{token}", post(heartbeat))
                    .route("/metrics", get(metrics))
                    .with_state(Receiver {
                        checker: checker.clone(),
                        db: db.clone(),
                        tokens: token_set.clone(),
                        stats: stats.clone(),
                        config: cfg_rx.clone(),
                    });
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await;
                }))
            }
            None => {
                if !token_set.read().map(|t| t.is_empty()).unwrap_or(true) {
                    tracing::warn!(
                        "heartbeat monitors are configured but no listen address is: set settings.listen or --listen"
                    );
                }
                None
            }
        };

        // Reload on SIGHUP or a changed file; an invalid file is reported and not applied.
        let reload = {
            let (path, cfg_tx, token_set) = (self.config.clone(), cfg_tx, token_set.clone());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut hup =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
                let mut seen = mtime(&path);
                loop {
                    let by_signal = tokio::select! {
                        _ = async {
                            match hup.as_mut() {
                                Some(h) => { h.recv().await; }
                                None => std::future::pending::<()>().await,
                            }
                        } => true,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => false,
                        _ = stop.changed() => return,
                    };
                    let now = mtime(&path);
                    if !by_signal && now == seen {
                        continue;
                    }
                    seen = now;
                    match opskit_monitor::config::load(&path) {
                        Ok(c) => {
                            if let Ok(mut t) = token_set.write() {
                                *t = tokens(&c);
                            }
                            eprintln!(
                                "opskit monitor: configuration reloaded ({} monitors)",
                                c.monitors.len()
                            );
                            let _ = cfg_tx.send(Arc::new(c));
                        }
                        Err(e) => eprintln!(
                            "opskit monitor: the new configuration is not applied (the old one keeps running): {e}"
                        ),
                    }
                }
            })
        };

        // SIGTERM / SIGINT: finish in-flight checks and deliveries, then exit.
        {
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
                eprintln!("opskit monitor: stopping after the checks and deliveries in flight");
                let _ = stop_tx.send(true);
            });
        }

        // One leader among the instances sharing the database runs checks and delivers alerts;
        // the others keep the configuration loaded (and reloading) and take over when its
        // lease runs out.
        let elector = Arc::new(lease::Elector::new(
            db.clone(),
            lease::default_holder(),
            self.lease,
        ));
        eprintln!(
            "opskit monitor: instance {} (lease {:?})",
            elector.holder(),
            self.lease
        );
        let result = lease::lead(elector, stop_rx.clone(), report, {
            let (checker, cfg_rx, stats) = (checker.clone(), cfg_rx.clone(), stats.clone());
            move |fenced: Db, stop| {
                let (checker, cfg_rx, stats) = (checker.clone(), cfg_rx.clone(), stats.clone());
                eprintln!(
                    "opskit monitor: running {} monitors",
                    cfg_rx.borrow().monitors.len()
                );
                async move {
                    // Heartbeats pushed to any instance are in the database: the leader reads
                    // them on taking over, then every few seconds.
                    let sync = async {
                        loop {
                            merge_heartbeats(&fenced, &checker).await;
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                    };
                    tokio::select! {
                        r = scheduler::run(fenced.clone(), checker.clone(), cfg_rx, stop, stats) => r,
                        () = sync => Ok(()),
                    }
                }
            }
        })
        .await;
        let _ = stop_tx.send(true);
        reload.abort();
        if let Some(s) = server {
            let _ = s.await;
        }
        db.close().await;
        result.map_err(|e| Failure::new(code::FAILURE, e.to_string()))?;
        Ok(code::OK)
    }
}
