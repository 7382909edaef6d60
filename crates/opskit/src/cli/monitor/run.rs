//! `opskit monitor run`: the daemon ([`opskit_monitor::service::Service`] with the file's
//! monitors), and its heartbeat receiver (`POST /heartbeat/<token>`) and `/metrics`.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::Args;
use opskit_monitor::config::Check;
use opskit_monitor::lease;
use opskit_monitor::service::{self, Service, ServiceOptions};
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

/// `POST /heartbeat/<token>` and `GET /metrics` of `--listen`.
#[derive(Clone)]
struct Receiver {
    service: Service,
}

/// `GET /metrics`: Prometheus text format (see `opskit_monitor::metrics`).
async fn metrics(State(r): State<Receiver>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        r.service.render_metrics().await,
    )
}

async fn heartbeat(State(r): State<Receiver>, Path(token): Path<String>) -> (StatusCode, String) {
    match r.service.heartbeat(&token).await {
        Ok(true) => (StatusCode::OK, "{\"ok\":true}\n".into()),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            "{\"error\":\"unknown token\"}\n".into(),
        ),
        Err(e) => {
            // The ping counts in this process; only other instances miss it.
            tracing::warn!(error = %e, "storing a heartbeat failed");
            (StatusCode::OK, "{\"ok\":true}\n".into())
        }
    }
}

/// SIGTERM or SIGINT.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

impl RunArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        crate::logging::init(crate::logging::LogFormat::Text, "info");
        if self.lease < lease::MIN_LEASE || self.lease > service::MAX_LEASE {
            return Err(Failure::usage(format!(
                "--lease {:?}: give a lease between 1s and 1h",
                self.lease
            ))
            .into());
        }
        let cfg = load(&self.config)?;
        if !cfg.templates.is_empty() {
            eprintln!(
                "opskit monitor: {} templates are applied to the inventory by `opskit serve --monitor-config` (not run here)",
                cfg.templates.len()
            );
        }
        let url = database_url(self.database.clone(), Some(&cfg))?;
        let listen = self.listen.clone().or_else(|| cfg.settings.listen.clone());
        crate::block_on(self.daemon(url, listen))?
    }

    async fn daemon(self, url: String, listen: Option<String>) -> anyhow::Result<u8> {
        let db = open_db(&url).await?;
        let listener = match &listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Failure::new(code::FAILURE, format!("cannot listen on {addr}: {e}"))
            })?),
            None => None,
        };
        let holder = lease::default_holder();
        eprintln!("opskit monitor: instance {holder} (lease {:?})", self.lease);
        let opts = ServiceOptions {
            config_path: Some(self.config.clone()),
            lease: self.lease,
            holder,
            ..ServiceOptions::new(db.clone())
        };
        // The file was read a moment ago; reading it again can only fail if it changed since.
        let service = Service::start(opts, |e| eprintln!("opskit monitor: {e}"))
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;

        // The heartbeat receiver and /metrics.
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = match listener {
            Some(listener) => {
                let local = listener.local_addr()?;
                eprintln!(
                    "opskit monitor: listening on http://{local} (POST /heartbeat/<token>, GET /metrics)"
                );
                let app = Router::new()
                    .route("/heartbeat/{token}", post(heartbeat))
                    .route("/metrics", get(metrics))
                    .with_state(Receiver {
                        service: service.clone(),
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
                let heartbeats = service
                    .config()
                    .monitors
                    .iter()
                    .any(|m| matches!(m.check, Check::Heartbeat { .. }));
                if heartbeats {
                    tracing::warn!(
                        "heartbeat monitors are configured but no listen address is: set settings.listen or --listen"
                    );
                }
                None
            }
        };

        // SIGTERM / SIGINT: finish in-flight checks and deliveries, then exit.
        tokio::select! {
            () = terminated() => {
                eprintln!("opskit monitor: stopping after the checks and deliveries in flight");
            }
            () = service.finished() => {}
        }
        let result = service.stop().await;
        let _ = stop_tx.send(true);
        if let Some(s) = server {
            let _ = s.await;
        }
        db.close().await;
        result.map_err(|e| Failure::new(code::FAILURE, e.to_string()))?;
        Ok(code::OK)
    }
}
