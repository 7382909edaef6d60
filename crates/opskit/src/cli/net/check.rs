//! `opskit net check TARGET...`

use std::time::Duration;

use clap::Args;
use opskit_net::check::{CheckState, check_all};
use opskit_net::target::Endpoint;
use serde_json::json;

use super::{Output, parse_duration, render, round_ms};
use crate::exit::code;
use crate::failure::net as failure;

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when every target is open; 3 when no target answered at all (each one timed out
or was unreachable); 1 otherwise (some target refused, timed out or was unreachable).")]
pub struct CheckArgs {
    /// Targets: host:port, ip:port or [ipv6]:port.
    #[arg(value_name = "TARGET", required = true)]
    targets: Vec<String>,
    /// Deadline per target (name resolution and connect), e.g. 3s, 500ms.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    timeout: Duration,
    /// Targets checked at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Output format (default: table on a terminal, JSON otherwise).
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let endpoints = self
            .targets
            .iter()
            .map(|t| Endpoint::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failure)?;
        let results = crate::block_on(check_all(
            &endpoints,
            self.timeout,
            usize::from(self.concurrency),
        ))?;
        let rows = results
            .iter()
            .map(|r| {
                json!({
                    "target": r.target,
                    "state": r.state.as_str(),
                    "addr": r.addr.map(|a| a.to_string()),
                    "latency_ms": round_ms(r.latency_ms),
                    "detail": r.detail,
                })
            })
            .collect();
        render(
            &["target", "state", "addr", "latency_ms", "detail"],
            rows,
            self.output,
        )?;
        let all_open = results.iter().all(|r| r.state == CheckState::Open);
        let none_answered = results
            .iter()
            .all(|r| matches!(r.state, CheckState::Timeout | CheckState::Unreachable));
        Ok(if all_open {
            code::OK
        } else if none_answered {
            code::NETWORK
        } else {
            code::FAILURE
        })
    }
}
