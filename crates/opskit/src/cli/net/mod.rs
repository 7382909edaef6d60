//! `opskit net`: port checks and scans, DNS lookups, waiting for services.
//!
//! Each command lives in its own file. The plumbing they share is the binary's: durations
//! ([`crate::duration`]), rows on stdout ([`crate::output`]), error → exit code
//! ([`crate::failure::net`]).

use clap::{Args, Subcommand};
use serde_json::Value;

pub use super::parse_duration;
pub use crate::output::Format as Output;

pub mod check;
pub mod connect;
pub mod dns;
pub mod echo;
pub mod listen;
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
    /// Raw bytes between stdin/stdout and HOST:PORT (TCP, --udp or --unix), like nc.
    Connect(connect::ConnectArgs),
    /// Accept a connection on PORT (TCP, --udp or --unix) and move raw bytes, like nc -l.
    Listen(listen::ListenArgs),
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
            NetCommand::Connect(args) => args.run(),
            NetCommand::Listen(args) => args.run(),
        }
    }
}

/// Writes rows to stdout in the chosen format (a table on a terminal, JSON otherwise).
pub fn render(columns: &[&str], rows: Vec<Value>, output: Option<Output>) -> anyhow::Result<()> {
    let mut out = crate::output::stdout();
    crate::output::render_rows(&mut out, columns, &rows, Output::or_default(output))?;
    Ok(())
}

/// Rounds milliseconds to 0.1 ms for output.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}
