//! `opskit net scan HOST... [--ports SPEC]`

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opskit_net::scan::{Progress, ProgressFn, ScanOptions, scan};
use opskit_net::target::{DEFAULT_MAX_HOSTS, HostSpec, expand_hosts, parse_ports};
use serde_json::json;

use super::{Output, parse_duration, render, round_ms};
use crate::exit::code;
use crate::failure::net as failure;
use crate::output::plural;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Hosts: names, addresses or CIDR blocks (10.0.0.0/24, fd00::/120).
    #[arg(value_name = "HOST", required = true)]
    hosts: Vec<String>,
    /// Ports: a list and ranges (22,80,443,8000-8100), `all` (1-65535) or `top` (the 1,000 most
    /// common, the default).
    #[arg(short = 'p', long, value_name = "SPEC", default_value = "top")]
    ports: String,
    /// Deadline of one connect; a port with no answer by then is `filtered`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// Extra tries for a port that timed out.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Connects in flight at once (default: sized from the open-file limit, raised to the hard
    /// limit where allowed).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: Option<u32>,
    /// Refuse to scan more addresses than this (CIDR blocks included).
    #[arg(long, default_value_t = DEFAULT_MAX_HOSTS)]
    max_hosts: usize,
    /// List closed and filtered ports too (default: open ports only; the others are counted).
    #[arg(long)]
    all: bool,
    /// Show the first line each open port sends (SSH, SMTP, FTP …), control characters escaped,
    /// at most 200 characters.
    #[arg(long)]
    banner: bool,
    /// How long to wait for an open port's banner; a port silent that long shows none.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    banner_timeout: Duration,
    /// No progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Output format (default: table on a terminal, JSON otherwise).
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
}

impl ScanArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let specs = self
            .hosts
            .iter()
            .map(|h| HostSpec::parse(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failure)?;
        let ports = parse_ports(&self.ports).map_err(failure)?;
        let opts = ScanOptions {
            timeout: self.timeout,
            retries: self.retries,
            concurrency: self.concurrency.map(|c| c as usize),
            keep_all: self.all,
            banner: self.banner.then_some(self.banner_timeout),
            ..ScanOptions::default()
        };
        let show_bar = !self.no_progress && std::io::stderr().is_terminal();
        let max_hosts = self.max_hosts;
        let report = crate::block_on(async move {
            let hosts = expand_hosts(&specs, max_hosts, Duration::from_secs(10)).await?;
            let total = hosts.len() as u64 * ports.len() as u64;
            let bar = show_bar.then(|| progress_bar(total));
            let progress: Option<ProgressFn> = bar.clone().map(|bar| {
                let last_open = AtomicU64::new(0);
                Arc::new(move |p: Progress| {
                    bar.set_position(p.done);
                    if last_open.swap(p.open, Ordering::Relaxed) != p.open {
                        bar.set_message(format!("{} open", p.open));
                    }
                }) as ProgressFn
            });
            let report = scan(hosts, ports, opts, progress).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            report
        })?
        .map_err(failure)?;

        let rows = report
            .ports
            .iter()
            .map(|p| {
                let mut row = json!({
                    "host": p.host,
                    "ip": p.ip.to_string(),
                    "port": p.port,
                    "state": p.state.as_str(),
                    "service": p.service,
                    "latency_ms": p.latency_ms.map(round_ms),
                });
                if self.banner {
                    row["banner"] = json!(p.banner);
                }
                row
            })
            .collect();
        let mut columns = vec!["host", "ip", "port", "state", "service", "latency_ms"];
        if self.banner {
            columns.push("banner");
        }
        render(&columns, rows, self.output)?;
        let mut summary = format!(
            "scanned {} in {:.2}s: {} open, {} closed, {} filtered (up to {} in flight, open-file limit {})",
            plural(
                report.open + report.closed + report.filtered,
                "port",
                "ports"
            ),
            report.elapsed.as_secs_f64(),
            report.open,
            report.closed,
            report.filtered,
            plural(report.concurrency as u64, "connect", "connects"),
            report.nofile_limit,
        );
        if report.resource_waits > 0 {
            summary.push_str(&format!(
                "; waited {} for a file descriptor or local port",
                plural(report.resource_waits, "time", "times")
            ));
        }
        if report.self_connects > 0 {
            summary.push_str(&format!(
                "; {} counted closed",
                plural(report.self_connects, "self-connect", "self-connects")
            ));
        }
        eprintln!("{summary}");
        Ok(code::OK)
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ports, {msg} (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message("0 open");
    bar
}
