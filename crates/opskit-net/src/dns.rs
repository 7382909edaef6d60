//! DNS lookups.
//!
//! - With no record type, every address a name has, like `getaddrinfo`: through the system
//!   resolver (`tokio::net::lookup_host`, so `/etc/hosts` and nsswitch apply), or with a server
//!   given, through DNS directly (A and AAAA).
//! - With a record type (A, AAAA, CNAME, MX, NS, TXT, SRV, SOA, PTR) or a reverse lookup, through
//!   hickory-resolver: to the server given, or to the servers of the system configuration
//!   (`/etc/resolv.conf`).
//!
//! Every lookup has a deadline.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use serde::Serialize;

use crate::{Error, Result};

/// The record types `dns --type` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Mx,
    Ns,
    Txt,
    Srv,
    Soa,
    Ptr,
}

impl RecordKind {
    fn record_type(self) -> RecordType {
        match self {
            RecordKind::A => RecordType::A,
            RecordKind::Aaaa => RecordType::AAAA,
            RecordKind::Cname => RecordType::CNAME,
            RecordKind::Mx => RecordType::MX,
            RecordKind::Ns => RecordType::NS,
            RecordKind::Txt => RecordType::TXT,
            RecordKind::Srv => RecordType::SRV,
            RecordKind::Soa => RecordType::SOA,
            RecordKind::Ptr => RecordType::PTR,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.record_type().fmt(f)
    }
}

impl FromStr for RecordKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "A" => RecordKind::A,
            "AAAA" => RecordKind::Aaaa,
            "CNAME" => RecordKind::Cname,
            "MX" => RecordKind::Mx,
            "NS" => RecordKind::Ns,
            "TXT" => RecordKind::Txt,
            "SRV" => RecordKind::Srv,
            "SOA" => RecordKind::Soa,
            "PTR" => RecordKind::Ptr,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown record type {s:?}: use A, AAAA, CNAME, MX, NS, TXT, SRV, SOA or PTR"
                )));
            }
        })
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// The owner name (as asked for the system resolver).
    pub name: String,
    /// `A`, `AAAA`, `MX`, …
    #[serde(rename = "type")]
    pub record_type: String,
    /// Time to live in seconds (absent from the system resolver).
    pub ttl: Option<u32>,
    /// The data in presentation form: an address, `10 mail.example.`, the TXT text, …
    pub value: String,
}

/// Where and how long to ask.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// A DNS server to ask directly; `None` uses the system configuration.
    pub server: Option<SocketAddr>,
    /// Deadline of the whole lookup (default 5 s).
    pub timeout: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            server: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Parses `--server`: `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 by default).
///
/// ```
/// use opskit_net::dns::parse_server;
/// assert_eq!(parse_server("127.0.0.1").unwrap().port(), 53);
/// assert_eq!(parse_server("[::1]:5353").unwrap().port(), 5353);
/// assert!(parse_server("dns.example").is_err());
/// ```
pub fn parse_server(s: &str) -> Result<SocketAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        Error::InvalidInput(format!(
            "bad DNS server {s:?}: give an IP address with an optional port, e.g. 127.0.0.1, 127.0.0.1:5353 or [::1]:53"
        ))
    })
}

/// Every address of `name` (A and AAAA): through the system resolver, or through DNS directly
/// when a server is given.
pub async fn lookup_addresses(name: &str, opts: &DnsOptions) -> Result<Vec<DnsRecord>> {
    if opts.server.is_none() {
        let lookup = tokio::net::lookup_host((name, 0));
        let addrs = match tokio::time::timeout(opts.timeout, lookup).await {
            Err(_) => {
                return Err(Error::Timeout {
                    what: format!("resolving {name}"),
                    after: opts.timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(Error::Resolve {
                    name: name.to_owned(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(a)) => a,
        };
        let mut out: Vec<DnsRecord> = Vec::new();
        for addr in addrs {
            let ip = addr.ip();
            let rec = DnsRecord {
                name: name.to_owned(),
                record_type: if ip.is_ipv4() { "A" } else { "AAAA" }.to_owned(),
                ttl: None,
                value: ip.to_string(),
            };
            if !out.contains(&rec) {
                out.push(rec);
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for kind in [RecordKind::A, RecordKind::Aaaa] {
        match lookup(name, kind, opts).await {
            Ok(recs) => out.extend(
                recs.into_iter()
                    .filter(|r| r.record_type == kind.to_string()),
            ),
            Err(Error::DnsNoRecords { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        return Err(Error::DnsNoRecords {
            name: name.to_owned(),
            record_type: "A or AAAA".into(),
        });
    }
    Ok(out)
}

/// Records of one type. A PTR query for an IP address asks for its `in-addr.arpa` /
/// `ip6.arpa` name.
pub async fn lookup(name: &str, kind: RecordKind, opts: &DnsOptions) -> Result<Vec<DnsRecord>> {
    let query_name = match (kind, name.parse::<IpAddr>()) {
        (RecordKind::Ptr, Ok(ip)) => Name::from(ip),
        _ => Name::from_str(name)
            .map_err(|e| Error::InvalidInput(format!("bad DNS name {name:?}: {e}")))?,
    };
    let resolver = resolver(opts)?;
    let rtype = kind.record_type();
    let fut = resolver.lookup(query_name.clone(), rtype);
    let lookup = match tokio::time::timeout(opts.timeout, fut).await {
        Err(_) => {
            return Err(Error::Timeout {
                what: format!("DNS {kind} query for {name}"),
                after: opts.timeout,
            });
        }
        Ok(Err(e)) => return Err(map_error(e, name, kind, opts.timeout)),
        Ok(Ok(l)) => l,
    };
    let out: Vec<DnsRecord> = lookup
        .answers()
        .iter()
        .map(|r| DnsRecord {
            name: r.name.to_string(),
            record_type: r.record_type().to_string(),
            ttl: Some(r.ttl),
            value: r.data.to_string(),
        })
        .collect();
    if out.is_empty() {
        return Err(Error::DnsNoRecords {
            name: name.to_owned(),
            record_type: kind.to_string(),
        });
    }
    Ok(out)
}

/// The names of an address (PTR records).
pub async fn reverse(ip: IpAddr, opts: &DnsOptions) -> Result<Vec<DnsRecord>> {
    lookup(&ip.to_string(), RecordKind::Ptr, opts).await
}

fn resolver(opts: &DnsOptions) -> Result<TokioResolver> {
    let mut builder = match opts.server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| Error::Dns {
            name: String::new(),
            record_type: String::new(),
            reason: format!(
                "cannot read the system resolver configuration (/etc/resolv.conf): {e}; give a server with --server"
            ),
        })?,
    };
    let o = builder.options_mut();
    o.timeout = opts.timeout;
    o.attempts = 1;
    o.cache_size = 0;
    if opts.server.is_some() {
        o.use_hosts_file = ResolveHosts::Never;
        // A name without dots is a name, not something to complete with search domains.
        o.ndots = 0;
    }
    builder.build().map_err(|e| Error::Dns {
        name: String::new(),
        record_type: String::new(),
        reason: format!("cannot build the resolver: {e}"),
    })
}

fn map_error(e: NetError, name: &str, kind: RecordKind, timeout: Duration) -> Error {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if matches!(
                nr.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ) =>
        {
            Error::DnsNoRecords {
                name: name.to_owned(),
                record_type: kind.to_string(),
            }
        }
        NetError::Timeout => Error::Timeout {
            what: format!("DNS {kind} query for {name}"),
            after: timeout,
        },
        other => Error::Dns {
            name: name.to_owned(),
            record_type: kind.to_string(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_case_insensitively() {
        assert_eq!("mx".parse::<RecordKind>().unwrap(), RecordKind::Mx);
        assert_eq!(RecordKind::Aaaa.to_string(), "AAAA");
        assert!("ANY".parse::<RecordKind>().is_err());
    }
}
