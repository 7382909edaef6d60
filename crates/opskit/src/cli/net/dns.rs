//! `opskit net dns NAME [--type T] [--server IP[:PORT]]` and `opskit net dns --reverse IP`

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use opskit_net::dns::{DnsOptions, RecordKind, lookup, lookup_addresses, parse_server, reverse};
use serde_json::json;

use super::{Output, parse_duration, render};
use crate::exit::code;
use crate::failure::net as failure;

#[derive(Debug, Args)]
#[command(after_help = "\
Without --type: every address of NAME (A and AAAA), through the system resolver like getaddrinfo
(/etc/hosts included), or through DNS directly with --server. With --type or --reverse: a DNS
query through the servers of /etc/resolv.conf, or --server.
Exit status: 0 with answers; 1 when there are none (NXDOMAIN, no records of the type) or the
server answered with an error; 3 on a timeout.")]
pub struct DnsArgs {
    /// The name to look up (an IP address with --type PTR).
    #[arg(
        value_name = "NAME",
        required_unless_present = "reverse",
        conflicts_with = "reverse"
    )]
    name: Option<String>,
    /// Record type: A, AAAA, CNAME, MX, NS, TXT, SRV, SOA or PTR.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_parser = parse_kind)]
    record_type: Option<RecordKind>,
    /// Ask this DNS server directly: IP or IP:PORT ([v6]:PORT); port 53 by default.
    #[arg(short = 's', long, value_name = "IP[:PORT]", value_parser = parse_server_arg)]
    server: Option<SocketAddr>,
    /// Reverse lookup: the names (PTR) of this address.
    #[arg(short = 'x', long, value_name = "IP")]
    reverse: Option<IpAddr>,
    /// Deadline of the whole lookup.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Output format (default: table on a terminal, JSON otherwise).
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
}

fn parse_kind(s: &str) -> Result<RecordKind, String> {
    s.parse().map_err(|e: opskit_net::Error| e.to_string())
}

fn parse_server_arg(s: &str) -> Result<SocketAddr, String> {
    parse_server(s).map_err(|e| e.to_string())
}

impl DnsArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let opts = DnsOptions {
            server: self.server,
            timeout: self.timeout,
        };
        let records = crate::block_on(async {
            match (self.reverse, self.name.as_deref(), self.record_type) {
                (Some(ip), _, _) => reverse(ip, &opts).await,
                (None, Some(name), Some(kind)) => lookup(name, kind, &opts).await,
                (None, Some(name), None) => lookup_addresses(name, &opts).await,
                (None, None, _) => Err(opskit_net::Error::InvalidInput(
                    "give a NAME or --reverse IP".into(),
                )),
            }
        })?
        .map_err(failure)?;
        let rows = records
            .iter()
            .map(|r| json!({"name": r.name, "type": r.record_type, "ttl": r.ttl, "value": r.value}))
            .collect();
        render(&["name", "type", "ttl", "value"], rows, self.output)?;
        Ok(code::OK)
    }
}
