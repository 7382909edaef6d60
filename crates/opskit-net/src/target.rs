//! Parsing what users type: `host:port` endpoints (`[v6]:port` for IPv6), scan hosts (names,
//! addresses, CIDR blocks with a cap) and port SPECs (`22,80,443,8000-8100`, `all`, `top`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::services::top_ports;
use crate::{Error, Result};

/// Default cap on the number of addresses one scan may expand to.
pub const DEFAULT_MAX_HOSTS: usize = 65_536;

/// A host and a port, as given (`web01:22`, `10.0.0.5:443`, `[::1]:8080`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// A name or an address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// Parses `host:port`, `ip:port` or `[ipv6]:port`.
    ///
    /// ```
    /// use opskit_net::target::Endpoint;
    /// let e = Endpoint::parse("[::1]:8080").unwrap();
    /// assert_eq!((e.host.as_str(), e.port), ("::1", 8080));
    /// assert!(Endpoint::parse("::1:8080").is_err()); // ambiguous: brackets are required
    /// ```
    pub fn parse(s: &str) -> Result<Endpoint> {
        let s = s.trim();
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "bad target {s:?}: {why}; write it as host:port, e.g. db01:5432, 10.0.0.5:22 or [::1]:8080"
            ))
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("missing the closing ']'"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("missing ':port' after the bracketed address"))?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(bad("the text in brackets is not an IPv6 address"));
            }
            (h, port)
        } else {
            let (h, port) = s.rsplit_once(':').ok_or_else(|| bad("missing ':port'"))?;
            if h.contains(':') {
                return Err(bad("an IPv6 address needs brackets"));
            }
            (h, port)
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if !host.contains(':') {
            check_hostname(host).map_err(|why| bad(&why))?;
        }
        let port = parse_port(port).map_err(|why| bad(&why))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }

    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

fn check_hostname(host: &str) -> std::result::Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            (!label.is_empty() || (i > 0 && host.ends_with('.')))
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a valid host name or address"))
    }
}

fn parse_port(s: &str) -> std::result::Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65_535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(format!("port {s} is out of range (1-65535)")),
        Err(_) => Err(format!("port {s:?} is not a number")),
    }
}

/// Resolves an endpoint to its socket addresses (system resolver, like `getaddrinfo`), with a
/// deadline. IP literals are not looked up.
pub async fn resolve(endpoint: &Endpoint, timeout: Duration) -> Result<Vec<SocketAddr>> {
    if let Some(ip) = endpoint.ip() {
        return Ok(vec![SocketAddr::new(ip, endpoint.port)]);
    }
    let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, lookup).await {
        Err(_) => {
            return Err(Error::Timeout {
                what: format!("resolving {}", endpoint.host),
                after: timeout,
            });
        }
        Ok(Err(e)) => {
            return Err(Error::Resolve {
                name: endpoint.host.clone(),
                reason: e.to_string(),
            });
        }
        Ok(Ok(it)) => it.collect(),
    };
    let mut out: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(Error::Resolve {
            name: endpoint.host.clone(),
            reason: "no addresses".into(),
        });
    }
    Ok(out)
}

/// One thing to scan as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSpec {
    /// An address.
    Ip(IpAddr),
    /// A block: network address and prefix length.
    Cidr(IpAddr, u8),
    /// A name to resolve.
    Name(String),
}

impl HostSpec {
    /// Parses an address, a CIDR block (`10.0.0.0/24`, `fd00::/120`) or a host name.
    pub fn parse(s: &str) -> Result<HostSpec> {
        let s = s.trim();
        let s = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(s);
        if let Some((addr, prefix)) = s.split_once('/') {
            let bad = |why: String| {
                Error::InvalidInput(format!(
                    "bad CIDR block {s:?}: {why}; write it like 10.0.0.0/24 or fd00::/120"
                ))
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| bad(format!("{addr:?} is not an IP address")))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(format!("the prefix must be a number from 0 to {max}")))?;
            return Ok(HostSpec::Cidr(network(ip, prefix), prefix));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostSpec::Ip(ip));
        }
        if s.is_empty() {
            return Err(Error::InvalidInput(
                "empty host: give a name, an address or a CIDR block".into(),
            ));
        }
        check_hostname(s).map_err(|why| {
            Error::InvalidInput(format!(
                "bad host {s:?}: {why}; give a name, an address or a CIDR block like 10.0.0.0/24"
            ))
        })?;
        Ok(HostSpec::Name(s.to_owned()))
    }

    /// How many addresses this spec stands for (a name counts as one).
    pub fn count(&self) -> u128 {
        match self {
            HostSpec::Cidr(ip, prefix) => {
                let bits = if ip.is_ipv4() { 32 } else { 128 } - u32::from(*prefix);
                if bits >= 128 {
                    u128::MAX
                } else {
                    1u128 << bits
                }
            }
            _ => 1,
        }
    }
}

fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// A host to scan: what the user called it and the address probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanHost {
    /// The name as given, or the address for addresses and CIDR members.
    pub label: String,
    pub ip: IpAddr,
}

/// Expands host specs into addresses: CIDR blocks into every address (network and broadcast
/// included, like nmap), names through the system resolver (the first address, IPv4 preferred).
/// Fails when the total would pass `max_hosts`.
pub async fn expand_hosts(
    specs: &[HostSpec],
    max_hosts: usize,
    resolve_timeout: Duration,
) -> Result<Vec<ScanHost>> {
    let total: u128 = specs
        .iter()
        .map(HostSpec::count)
        .fold(0, u128::saturating_add);
    if total > max_hosts as u128 {
        let what = match specs {
            [one @ HostSpec::Cidr(ip, p)] if one.count() == total => format!("{ip}/{p}"),
            _ => "the hosts given".to_owned(),
        };
        return Err(Error::TooManyHosts {
            what,
            count: total,
            cap: max_hosts,
        });
    }
    let mut out = Vec::new();
    for spec in specs {
        match spec {
            HostSpec::Ip(ip) => out.push(ScanHost {
                label: ip.to_string(),
                ip: *ip,
            }),
            HostSpec::Cidr(ip, _) => {
                let n = spec.count();
                for i in 0..n {
                    let ip = match ip {
                        IpAddr::V4(v4) => {
                            IpAddr::V4(Ipv4Addr::from(u32::from(*v4).wrapping_add(i as u32)))
                        }
                        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(*v6) + i)),
                    };
                    out.push(ScanHost {
                        label: ip.to_string(),
                        ip,
                    });
                }
            }
            HostSpec::Name(name) => {
                let ep = Endpoint {
                    host: name.clone(),
                    port: 1,
                };
                let addrs = resolve(&ep, resolve_timeout).await?;
                let ip = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .map(SocketAddr::ip)
                    .ok_or_else(|| Error::Resolve {
                        name: name.clone(),
                        reason: "no addresses".into(),
                    })?;
                out.push(ScanHost {
                    label: name.clone(),
                    ip,
                });
            }
        }
    }
    Ok(out)
}

/// Parses a port SPEC: a comma-separated list of ports and ranges (`22,80,443,8000-8100`),
/// `all` (1-65535) or `top` (the 1,000 most common, most frequent first). Lists come out sorted
/// and without duplicates.
///
/// ```
/// use opskit_net::target::parse_ports;
/// assert_eq!(parse_ports("443,22,80-82,22").unwrap(), vec![22, 80, 81, 82, 443]);
/// assert_eq!(parse_ports("all").unwrap().len(), 65_535);
/// assert_eq!(parse_ports("top").unwrap().len(), 1_000);
/// assert!(parse_ports("80-70").is_err());
/// ```
pub fn parse_ports(spec: &str) -> Result<Vec<u16>> {
    let spec = spec.trim();
    let bad = |why: String| {
        Error::InvalidInput(format!(
            "bad port SPEC {spec:?}: {why}; write ports and ranges like 22,80,443,8000-8100, or `all`, or `top`"
        ))
    };
    match spec.to_ascii_lowercase().as_str() {
        "all" | "-" => return Ok((1..=65_535).collect()),
        "top" | "top1000" | "default" => return Ok(top_ports().to_vec()),
        _ => {}
    }
    let mut seen = vec![false; 65_536];
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("an empty item".into()));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => {
                let lo = if a.trim().is_empty() {
                    Ok(1)
                } else {
                    parse_port(a.trim())
                };
                let hi = if b.trim().is_empty() {
                    Ok(65_535)
                } else {
                    parse_port(b.trim())
                };
                (lo.map_err(&bad)?, hi.map_err(&bad)?)
            }
            None => {
                let p = parse_port(part).map_err(&bad)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(bad(format!("the range {part} runs backwards")));
        }
        for p in lo..=hi {
            seen[usize::from(p)] = true;
        }
    }
    Ok((1..=65_535u16).filter(|p| seen[usize::from(*p)]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("db01.example:5432").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("db01.example", 5432));
        assert_eq!(Endpoint::parse("[::1]:80").unwrap().to_string(), "[::1]:80");
        for bad in [
            "db01",
            "db01:",
            ":80",
            "db01:0",
            "db01:70000",
            "db01:http",
            "::1:80",
            "[::1]80",
            "[nothost]:80",
            "a b:80",
        ] {
            let err = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(err.contains("host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn host_specs_and_cidr_cap() {
        assert_eq!(
            HostSpec::parse("10.1.2.3/24").unwrap(),
            HostSpec::Cidr("10.1.2.0".parse().unwrap(), 24)
        );
        assert_eq!(HostSpec::parse("10.1.2.3/24").unwrap().count(), 256);
        assert_eq!(HostSpec::parse("::/0").unwrap().count(), u128::MAX);
        assert!(HostSpec::parse("10.0.0.0/33").is_err());
        assert!(HostSpec::parse("x/8").is_err());
        assert_eq!(
            HostSpec::parse("[::1]").unwrap(),
            HostSpec::Ip("::1".parse().unwrap())
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let hosts = rt
            .block_on(expand_hosts(
                &[HostSpec::parse("127.0.0.0/30").unwrap()],
                16,
                Duration::from_secs(1),
            ))
            .unwrap();
        let ips: Vec<String> = hosts.iter().map(|h| h.label.clone()).collect();
        assert_eq!(ips, ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]);
        let err = rt
            .block_on(expand_hosts(
                &[HostSpec::parse("127.0.0.0/8").unwrap()],
                1024,
                Duration::from_secs(1),
            ))
            .unwrap_err();
        assert!(matches!(err, Error::TooManyHosts { .. }), "{err}");
    }

    #[test]
    fn port_specs() {
        assert_eq!(
            parse_ports(" 8000-8002 , 22").unwrap(),
            [22, 8000, 8001, 8002]
        );
        assert_eq!(parse_ports("65530-").unwrap().len(), 6);
        let top = parse_ports("top").unwrap();
        assert_eq!(top.len(), 1000);
        assert_eq!(top[0], 80, "http is the most common port in every source");
        for port in [22, 443, 3306] {
            assert!(top.contains(&port), "{port}");
        }
        for bad in ["", "0", "1,,2", "a-b", "5-1", "65536", "22;80"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }
}
