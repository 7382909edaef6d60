//! `opskit monitor`: validate, check, run, status, import-gatus. The engine is the
//! `opskit-monitor` crate; this module parses flags, renders and maps outcomes to exit codes.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use crate::exit::{Failure, code};

mod check;
mod import;
mod run;
mod status;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    pub command: MonitorCommand,
}

/// Table (default on a terminal) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Check a monitor.toml: exit 0 when valid, 2 with `file:line: key: what` otherwise.
    Validate {
        /// The configuration file.
        file: PathBuf,
    },
    /// Run every monitor once, now: exit 0 when all are up, 1 otherwise (for cron and CI).
    Check(check::CheckArgs),
    /// The daemon: checks on their intervals, alert state machine, outbox delivery, heartbeat
    /// receiver. SIGHUP or a changed file reloads; SIGTERM finishes in-flight work.
    Run(run::RunArgs),
    /// Current state, open incidents and uptime (24h, 7d, 30d) from the database.
    Status(status::StatusArgs),
    /// Convert a Gatus configuration (YAML) to a monitor.toml on stdout: exit 0 when all was
    /// converted, 6 when some items were not (listed on stderr and at the top of the output),
    /// 2 when the file is not a readable Gatus configuration.
    ImportGatus(import::ImportGatusArgs),
}

impl MonitorArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        // `run` installs its own subscriber (default level info); the others log warnings
        // only, unless OPSKIT_LOG says otherwise.
        if !matches!(self.command, MonitorCommand::Run(_)) {
            crate::logging::init(
                crate::logging::LogFormat::Text,
                crate::logging::DEFAULT_FILTER,
            );
        }
        tracing::debug!(command = ?self.command, "opskit monitor");
        match self.command {
            MonitorCommand::Validate { file } => {
                let cfg = load(&file)?;
                let alerts: usize = cfg.monitors.iter().map(|m| m.alerts.len()).sum();
                // templates make their monitors in `opskit serve`, one per inventory server
                let templates = match cfg.templates.len() {
                    0 => String::new(),
                    n => {
                        format!(", {n} templates (one monitor per selected server in opskit serve)")
                    }
                };
                println!(
                    "{}: valid: {} monitors, {} destinations, {} alerts, {} maintenance windows{templates}",
                    file.display(),
                    cfg.monitors.len(),
                    cfg.destinations.len(),
                    alerts,
                    cfg.maintenance.len()
                );
                Ok(code::OK)
            }
            MonitorCommand::Check(a) => a.run(),
            MonitorCommand::Run(a) => a.run(),
            MonitorCommand::Status(a) => a.run(),
            MonitorCommand::ImportGatus(a) => a.run(),
        }
    }
}

/// Loads a config; a bad one is a usage error (exit 2).
pub(crate) fn load(file: &Path) -> anyhow::Result<opskit_monitor::Config> {
    opskit_monitor::config::load(file).map_err(|e| match e {
        opskit_monitor::Error::Io { .. } => Failure::usage(e.to_string()).into(),
        other => Failure::usage(other.to_string())
            .with_hint("`opskit monitor validate FILE` checks a configuration")
            .into(),
    })
}

/// The database URL: the flag, else the config's `settings.database`, else a file in the
/// user's data directory.
pub(crate) fn database_url(
    flag: Option<String>,
    cfg: Option<&opskit_monitor::Config>,
) -> anyhow::Result<String> {
    if let Some(u) = flag.or_else(|| cfg.and_then(|c| c.settings.database.clone())) {
        return Ok(u);
    }
    let dir = dirs::data_local_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("opskit");
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(
            code::FAILURE,
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    Ok(format!("sqlite://{}", dir.join("monitor.db").display()))
}

pub(crate) async fn open_db(url: &str) -> anyhow::Result<opskit_monitor::store::Db> {
    opskit_monitor::store::Db::open(url).await.map_err(|e| {
        let c = match e {
            opskit_monitor::Error::Config(_) => code::USAGE,
            _ => code::FAILURE,
        };
        Failure::new(c, format!("monitor database: {e}")).into()
    })
}

/// `12 ms`, `1.2 s`.
pub(crate) fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{v:.0} ms")
    }
}
