//! `opskit net`: port checks and scans, DNS lookups, waiting for services.
//!
//! Each command lives in its own file; the shared bits (output formats, durations, error
//! mapping) are here.

use std::io::{IsTerminal as _, Write as _};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::cli::http::render::{csv_field, write_json_colored};
use crate::exit::{Failure, code};

pub use super::parse_duration;

pub mod check;
pub mod dns;
pub mod echo;
pub mod scan;
pub mod transfer;
pub mod wait;

#[derive(Debug, Args)]
pub struct NetArgs {
    #[command(subcommand)]
    pub command: NetCommand,
}

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Is each host:port accepting TCP connections? Concurrently, with latency.
    Check(check::CheckArgs),
    /// TCP connect scan of hosts, addresses or CIDR blocks (no false positives).
    Scan(scan::ScanArgs),
    /// Look up addresses or records (A, AAAA, CNAME, MX, NS, TXT, SRV, SOA, PTR).
    Dns(dns::DnsArgs),
    /// Wait until every host:port or http(s):// URL is ready, then run a command.
    Wait(wait::WaitArgs),
    /// Echo server and client, TCP (framed messages) or UDP (one datagram per message).
    #[command(subcommand)]
    Echo(echo::EchoCommand),
    /// Send files to an `opskit net receive` (checksummed, verified by the receiver).
    Send(transfer::SendArgs),
    /// Receive files from `opskit net send` into a directory.
    Receive(transfer::ReceiveArgs),
}

impl NetArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        match self.command {
            NetCommand::Check(a) => a.run(),
            NetCommand::Scan(a) => a.run(),
            NetCommand::Dns(a) => a.run(),
            NetCommand::Wait(a) => a.run(),
            NetCommand::Echo(cmd) => cmd.run(),
            NetCommand::Send(args) => transfer::send(args),
            NetCommand::Receive(args) => transfer::receive(args),
        }
    }
}

/// `--output` of the net commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A text table (the default on a terminal).
    Table,
    /// A JSON array of objects (the default when stdout is not a terminal).
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// Writes rows (JSON objects) in the chosen format, with `columns` in that order for the table
/// and CSV; without `--output`, a table on a terminal and JSON otherwise.
pub fn render(columns: &[&str], rows: Vec<Value>, output: Option<Output>) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let out = std::io::stdout();
    let mut out = out.lock();
    let cell = |row: &Value, col: &str| match row.get(col) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match output.unwrap_or(if tty { Output::Table } else { Output::Json }) {
        Output::Json => {
            let color = tty && std::env::var_os("NO_COLOR").is_none();
            let v = Value::Array(rows);
            if color {
                write_json_colored(&mut out, &v, 0)?;
            } else {
                serde_json::to_writer_pretty(&mut out, &v)?;
            }
            writeln!(out)?;
        }
        Output::Csv => {
            writeln!(out, "{}", columns.join(","))?;
            for row in &rows {
                let line: Vec<String> = columns.iter().map(|c| csv_field(&cell(row, c))).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Output::Table => {
            if rows.is_empty() {
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(if tty {
                comfy_table::presets::UTF8_FULL_CONDENSED
            } else {
                comfy_table::presets::ASCII_FULL_CONDENSED
            });
            table.set_header(columns.to_vec());
            for row in &rows {
                table.add_row(columns.iter().map(|c| cell(row, c)));
            }
            writeln!(out, "{table}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Maps a library error to a failure with the right exit code and a hint.
pub fn failure(e: opskit_net::Error) -> anyhow::Error {
    use opskit_net::Error as E;
    let msg = e.to_string();
    let f = match &e {
        E::InvalidInput(_) => Failure::usage(msg).with_hint("see `opskit net <command> --help`"),
        E::TooManyHosts { .. } => Failure::usage(msg),
        E::Timeout { .. } => Failure::new(code::NETWORK, msg),
        E::ResourcesExhausted { .. } => Failure::new(code::FAILURE, msg)
            .with_hint("raise the open-file limit (`ulimit -n`) or lower --concurrency"),
        _ => Failure::new(code::FAILURE, msg),
    };
    f.into()
}

/// Rounds milliseconds to 0.1 ms for output.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}
