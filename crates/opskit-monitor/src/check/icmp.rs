//! `kind = "icmp"`: one echo request through an unprivileged ICMP datagram socket (surge-ping;
//! a raw socket when the process may open one instead). Where `net.ipv4.ping_group_range`
//! excludes our group and raw sockets are not allowed either, the error says so and how to
//! fix it.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence};

use super::Raw;

/// The system's `ping_group_range` (`"1 0"` means nobody), when readable.
pub fn ping_group_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// Why no ICMP socket could be opened, in words a user can act on.
pub fn socket_error(e: &std::io::Error) -> String {
    let range = ping_group_range()
        .map(|(lo, hi)| format!("net.ipv4.ping_group_range is \"{lo} {hi}\""))
        .unwrap_or_else(|| "net.ipv4.ping_group_range could not be read".into());
    format!(
        "cannot open an ICMP socket ({e}): unprivileged ICMP (datagram) sockets are not allowed \
         for this process's group ({range}) and raw sockets need CAP_NET_RAW; allow them with \
         `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, or use a tcp monitor"
    )
}

pub(crate) async fn check(host: &str, timeout: Duration) -> Raw {
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => {
            let ep = opskit_net::target::Endpoint {
                host: host.to_string(),
                port: 0,
            };
            match opskit_net::target::resolve(&ep, timeout).await {
                Ok(a) if !a.is_empty() => a[0].ip(),
                Ok(_) => {
                    return Raw::err(
                        json!({"reachable": false}),
                        format!("{host} has no address"),
                    );
                }
                Err(e) => return Raw::err(json!({"reachable": false}), e.to_string()),
            }
        }
    };
    let config = Config::builder()
        .kind(if ip.is_ipv4() { ICMP::V4 } else { ICMP::V6 })
        .sock_type_hint(socket2::Type::DGRAM)
        .build();
    let client = match Client::new(&config) {
        Ok(c) => c,
        Err(e) => return Raw::err(json!({"reachable": false}), socket_error(&e)),
    };
    let mut pinger = client.pinger(ip, PingIdentifier(rand::random())).await;
    pinger.timeout(timeout);
    match pinger.ping(PingSequence(0), &[0u8; 16]).await {
        Ok((_, rtt)) => Raw::ok(json!({
            "reachable": true,
            "address": ip.to_string(),
            "ip": ip.to_string(),
            "response_time_ms": (rtt.as_secs_f64() * 10000.0).round() / 10.0,
        })),
        Err(surge_ping::SurgeError::Timeout { .. }) => Raw::err(
            json!({"reachable": false, "address": ip.to_string()}),
            format!("no echo reply from {ip} within {timeout:?}"),
        ),
        Err(e) => Raw::err(
            json!({"reachable": false, "address": ip.to_string()}),
            e.to_string(),
        ),
    }
}
