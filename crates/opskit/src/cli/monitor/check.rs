//! `opskit monitor check`: every monitor once, now.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::StreamExt as _;
use opskit_monitor::check::{Checker, guard_ok};
use opskit_monitor::{Report, Status};

use super::{Output, load, ms};
use crate::exit::{Failure, code};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Only this monitor (repeat for several).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
    /// Checks running at once (1-4096; default: settings.concurrency of the file, else 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub concurrency: Option<u16>,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let cfg = load(&self.config)?;
        if !cfg.templates.is_empty() {
            eprintln!(
                "note: {} templates are applied to the inventory by `opskit serve --monitor-config` (not checked here)",
                cfg.templates.len()
            );
        }
        for name in &self.only {
            if !cfg.monitors.iter().any(|m| &m.name == name) {
                return Err(Failure::usage(format!(
                    "--only {name:?}: no monitor of that name in {}",
                    self.config.display()
                ))
                .into());
            }
        }
        let monitors: Vec<_> = cfg
            .monitors
            .iter()
            .filter(|m| self.only.is_empty() || self.only.contains(&m.name))
            .filter(|m| {
                // A heartbeat is received by `monitor run`; a one-shot check has nothing to judge.
                let skip = self.only.is_empty() && m.check.kind() == "heartbeat";
                if skip {
                    eprintln!(
                        "note: {}: heartbeat monitors are judged by `opskit monitor run` (skipped)",
                        m.name
                    );
                }
                !skip
            })
            .cloned()
            .collect();
        let concurrency = self
            .concurrency
            .map_or(cfg.settings.concurrency, usize::from);
        let guards = cfg.settings.guard.clone();
        let reports = crate::block_on(async move {
            let checker = Arc::new(Checker::default());
            // Each check is a task of its own (so they spread over every core), unordered (so
            // one slow target does not hold back the checks behind it); the table keeps the
            // file's order.
            let mut indexed: Vec<(usize, Report)> =
                futures::stream::iter(monitors.into_iter().enumerate())
                    .map(|(i, m)| {
                        let checker = checker.clone();
                        let (name, kind, target) =
                            (m.name.clone(), m.check.kind(), m.check.target());
                        let task = tokio::spawn(async move { checker.run(&m).await });
                        async move {
                            let report = task.await.unwrap_or_else(|e| Report {
                                monitor: name,
                                kind,
                                target,
                                status: Status::Down,
                                response_time_ms: 0.0,
                                reason: Some(format!("internal error: the check failed ({e})")),
                                failed_condition: None,
                                result: serde_json::Value::Null,
                            });
                            (i, report)
                        }
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
            indexed.sort_by_key(|(i, _)| *i);
            let mut reports: Vec<Report> = indexed.into_iter().map(|(_, r)| r).collect();
            if reports.iter().any(|r| r.status == Status::Down)
                && !guard_ok(&checker, &guards, Duration::from_secs(5)).await
            {
                for r in reports.iter_mut().filter(|r| r.status == Status::Down) {
                    r.status = Status::Unknown;
                    let why = r.reason.take().unwrap_or_default();
                    r.reason = Some(format!("unknown: no guard target answered; {why}"));
                }
            }
            reports
        })?;
        // Buffered: stdout is line-buffered, and pretty JSON of 2,000 reports is 40,000 lines.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match self.output {
            Output::Json => {
                serde_json::to_writer_pretty(&mut out, &reports)?;
                writeln!(out)?;
            }
            Output::Table => {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::NOTHING);
                t.set_header(["MONITOR", "KIND", "STATUS", "LATENCY", "TARGET", "REASON"]);
                for r in &reports {
                    t.add_row([
                        r.monitor.clone(),
                        r.kind.to_string(),
                        r.status.as_str().to_string(),
                        ms(r.response_time_ms),
                        r.target.clone(),
                        r.reason.clone().unwrap_or_default(),
                    ]);
                }
                writeln!(out, "{t}")?;
            }
        }
        out.flush()?;
        Ok(if reports.iter().all(|r| r.status == Status::Up) {
            code::OK
        } else {
            code::FAILURE
        })
    }
}
