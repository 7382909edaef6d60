//! `opskit monitor status`: state, open incidents, uptime.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::{Output, database_url, load, ms, open_db};
use crate::exit::code;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Database URL (default: settings.database of --config, else monitor.db in the user's
    /// data directory).
    #[arg(long, value_name = "URL", env = "OPSKIT_MONITOR_DATABASE")]
    pub database: Option<String>,
    /// A configuration whose settings.database to use.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |p| format!("{p:.2}%"))
}

fn ago(now_ms: i64, at_ms: i64) -> String {
    let s = (now_ms - at_ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// Who leads, by the database's clock.
fn leader_line(l: Option<&opskit_monitor::lease::LeaseInfo>) -> String {
    let Some(l) = l else {
        return "leader: none yet (no `opskit monitor run` has taken the lease)".into();
    };
    let secs = |ms: i64| format!("{:.1}s", ms as f64 / 1000.0);
    if l.is_live() {
        format!(
            "leader: {} (fencing token {}) since {}, lease expires in {}",
            l.holder,
            l.token,
            ago(l.db_now_ms, l.since_ms),
            secs(l.expires_ms - l.db_now_ms)
        )
    } else {
        format!(
            "leader: none: the lease of {} (fencing token {}) ran out {} ago",
            l.holder,
            l.token,
            secs(l.db_now_ms - l.expires_ms)
        )
    }
}

impl StatusArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let cfg = self.config.as_deref().map(load).transpose()?;
        let url = database_url(self.database.clone(), cfg.as_ref())?;
        let now = opskit_monitor::now_ms();
        let (rows, (pending, failed), leader) = crate::block_on(async move {
            let db = open_db(&url).await?;
            let rows = opskit_monitor::status::status(&db, now).await?;
            let counts = opskit_monitor::status::outbox_counts(&db).await?;
            let leader = opskit_monitor::lease::current(&db).await?;
            db.close().await;
            anyhow::Ok((rows, counts, leader))
        })??;
        let mut out = std::io::stdout().lock();
        match self.output {
            Output::Json => {
                let doc = serde_json::json!({
                    "monitors": rows,
                    "outbox": {"pending": pending, "failed": failed},
                    "leader": leader.as_ref().map(|l| serde_json::json!({
                        "holder": l.holder,
                        "fencing_token": l.token,
                        "since_ms": l.since_ms,
                        "renewed_ms": l.renewed_ms,
                        "expires_ms": l.expires_ms,
                        "live": l.is_live(),
                    })),
                });
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            }
            Output::Table => {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::NOTHING);
                t.set_header([
                    "MONITOR", "STATUS", "CHECKED", "LATENCY", "24H", "7D", "30D", "INCIDENT",
                ]);
                for r in &rows {
                    let incident = r.incident.as_ref().map_or_else(String::new, |i| {
                        format!(
                            "{} since {}: {}",
                            i.id,
                            ago(now, i.started_ms),
                            i.reason.clone().unwrap_or_default()
                        )
                    });
                    t.add_row([
                        r.monitor.clone(),
                        r.status.clone(),
                        ago(now, r.last_check_ms),
                        r.last_response_time_ms.map(ms).unwrap_or_default(),
                        pct(r.uptime_24h),
                        pct(r.uptime_7d),
                        pct(r.uptime_30d),
                        incident,
                    ]);
                }
                writeln!(out, "{t}")?;
                let open = rows.iter().filter(|r| r.incident.is_some()).count();
                writeln!(
                    out,
                    "{} monitors, {open} open incidents, {pending} alerts waiting for delivery, {failed} given up",
                    rows.len()
                )?;
                writeln!(out, "{}", leader_line(leader.as_ref()))?;
            }
        }
        out.flush()?;
        Ok(code::OK)
    }
}
