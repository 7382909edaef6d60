//! TCP ports and their service names: the port list of `scan --ports top` and the `service`
//! column of scan results.
//!
//! Sources, in order:
//!
//! 1. **nmap's `nmap-services`, read at run time** when nmap is installed
//!    (`/usr/share/nmap/nmap-services`, `/usr/local/share/nmap/nmap-services`, or the file named
//!    by `OPSKIT_NMAP_SERVICES`): `top` is then its 1,000 most frequently open TCP ports, most
//!    frequent first (the same set as `nmap --top-ports 1000`), and its names are used. The file
//!    stays on the user's system under its own licence (the Nmap Public Source License); none of
//!    its data is part of opskit.
//! 2. Otherwise the **built-in list** below, written by hand for opskit from public knowledge:
//!    port assignments of the IANA Service Name and Transport Protocol Port Number Registry and
//!    the documented default ports of common server software. `top` is then [`COMMON_TCP`] in
//!    its order (the services operations people run, most common first), followed by the rest of
//!    the IANA system ports 1–1024 in ascending order, 1,000 ports in all.
//! 3. Names the built-in list lacks come from the system's `/etc/services` (IANA-derived) when
//!    present.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How many ports `--ports top` scans.
pub const TOP_COUNT: usize = 1000;

/// Commonly open TCP services, most common first (hand-written; see the module docs).
pub const COMMON_TCP: &[(u16, &str)] = &[
    (80, "http"),
    (443, "https"),
    (22, "ssh"),
    (21, "ftp"),
    (25, "smtp"),
    (23, "telnet"),
    (3389, "ms-wbt-server"),
    (53, "domain"),
    (110, "pop3"),
    (143, "imap"),
    (445, "microsoft-ds"),
    (139, "netbios-ssn"),
    (135, "epmap"),
    (3306, "mysql"),
    (8080, "http-alt"),
    (5432, "postgresql"),
    (993, "imaps"),
    (995, "pop3s"),
    (587, "submission"),
    (465, "submissions"),
    (111, "sunrpc"),
    (8443, "https-alt"),
    (8000, "http-alt"),
    (1723, "pptp"),
    (5900, "rfb"),
    (6379, "redis"),
    (27017, "mongodb"),
    (1433, "ms-sql-s"),
    (1521, "oracle"),
    (2049, "nfs"),
    (389, "ldap"),
    (636, "ldaps"),
    (88, "kerberos"),
    (464, "kpasswd"),
    (3268, "globalcatldap"),
    (3269, "globalcatldapssl"),
    (5985, "wsman"),
    (5986, "wsmans"),
    (6443, "kubernetes-api"),
    (10250, "kubelet"),
    (2379, "etcd-client"),
    (2380, "etcd-server"),
    (2375, "docker"),
    (2376, "docker-s"),
    (9090, "prometheus"),
    (9100, "node-exporter"),
    (9093, "alertmanager"),
    (3000, "grafana"),
    (9200, "elasticsearch"),
    (9300, "elasticsearch-transport"),
    (5601, "kibana"),
    (5044, "beats"),
    (5672, "amqp"),
    (5671, "amqps"),
    (15672, "rabbitmq-management"),
    (4369, "epmd"),
    (9092, "kafka"),
    (2181, "zookeeper"),
    (11211, "memcache"),
    (5984, "couchdb"),
    (9042, "cassandra"),
    (7000, "cassandra-cluster"),
    (7199, "cassandra-jmx"),
    (8086, "influxdb"),
    (8200, "vault"),
    (8500, "consul"),
    (8300, "consul-server"),
    (8301, "consul-serf-lan"),
    (8600, "consul-dns"),
    (7474, "neo4j"),
    (8983, "solr"),
    (61616, "activemq"),
    (8161, "activemq-admin"),
    (1883, "mqtt"),
    (8883, "secure-mqtt"),
    (5222, "xmpp-client"),
    (5269, "xmpp-server"),
    (5060, "sip"),
    (5061, "sips"),
    (1194, "openvpn"),
    (1812, "radius"),
    (179, "bgp"),
    (873, "rsync"),
    (3128, "squid-http"),
    (1080, "socks"),
    (631, "ipp"),
    (515, "printer"),
    (548, "afp"),
    (554, "rtsp"),
    (990, "ftps"),
    (992, "telnets"),
    (989, "ftps-data"),
    (113, "ident"),
    (119, "nntp"),
    (563, "nntps"),
    (514, "shell"),
    (513, "login"),
    (512, "exec"),
    (3260, "iscsi-target"),
    (3690, "svn"),
    (9418, "git"),
    (8009, "ajp13"),
    (8081, "http-alt"),
    (8082, "http-alt"),
    (8088, "http-alt"),
    (8888, "http-alt"),
    (8008, "http-alt"),
    (8001, "http-alt"),
    (8010, "http-alt"),
    (9000, "http-alt"),
    (9001, "http-alt"),
    (9080, "http-alt"),
    (9443, "https-alt"),
    (4443, "https-alt"),
    (10443, "https-alt"),
    (5000, "http-alt"),
    (5001, "http-alt"),
    (7001, "weblogic"),
    (4848, "glassfish-admin"),
    (8089, "splunkd"),
    (10000, "webmin"),
    (5666, "nrpe"),
    (10050, "zabbix-agent"),
    (10051, "zabbix-trapper"),
    (19999, "netdata"),
    (9411, "zipkin"),
    (16686, "jaeger-query"),
    (4317, "otlp-grpc"),
    (4318, "otlp-http"),
    (6000, "x11"),
    (6001, "x11"),
    (5901, "rfb"),
    (5800, "vnc-http"),
    (5938, "teamviewer"),
    (6667, "irc"),
    (6697, "ircs"),
    (2222, "ssh-alt"),
    (2200, "ssh-alt"),
    (50000, "ibm-db2"),
    (50070, "hadoop-namenode"),
    (8020, "hadoop-ipc"),
    (7077, "spark"),
    (4040, "spark-ui"),
    (8123, "http-alt"),
    (8181, "http-alt"),
    (8880, "http-alt"),
    (25565, "minecraft"),
    (27018, "mongodb-shard"),
    (1900, "ssdp"),
    (5353, "mdns"),
    (5355, "llmnr"),
    (2000, "cisco-sccp"),
    (4444, "krb524"),
    (1099, "rmiregistry"),
    (902, "vmware-auth"),
    (5357, "wsdapi"),
    (49152, "dynamic"),
    (49153, "dynamic"),
    (49154, "dynamic"),
];

struct Table {
    top: Vec<u16>,
    names: HashMap<u16, String>,
    source: String,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(load)
}

/// The nmap-services file to read, if one is installed (or named by `OPSKIT_NMAP_SERVICES`).
fn nmap_services_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPSKIT_NMAP_SERVICES").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/share/nmap/nmap-services",
        "/usr/local/share/nmap/nmap-services",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn load() -> Table {
    if let Some(path) = nmap_services_path()
        && let Ok(text) = std::fs::read_to_string(&path)
        && let Some((top, names)) = parse_nmap_services(&text)
    {
        return Table {
            top,
            names,
            source: format!("nmap-services ({})", path.display()),
        };
    }
    let mut names: HashMap<u16, String> = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(Path::new("/etc/services")) {
        names = parse_etc_services(&text);
    }
    for (port, name) in COMMON_TCP {
        names.insert(*port, (*name).to_owned());
    }
    Table {
        top: built_in_top(),
        names,
        source: "built-in list".to_owned(),
    }
}

/// The built-in `top`: [`COMMON_TCP`] in its order, then the rest of ports 1–1024, 1,000 in all.
pub fn built_in_top() -> Vec<u16> {
    let mut seen = std::collections::HashSet::new();
    let mut top: Vec<u16> = Vec::with_capacity(TOP_COUNT);
    for port in COMMON_TCP.iter().map(|(p, _)| *p).chain(1..=1024) {
        if top.len() == TOP_COUNT {
            break;
        }
        if seen.insert(port) {
            top.push(port);
        }
    }
    top
}

/// Parses nmap's `nmap-services` (`name  port/proto  frequency  [# comment]`): the
/// [`TOP_COUNT`] TCP ports with the highest frequency, most frequent first, and the name of each
/// TCP port. `None` when the text holds no TCP entries.
pub fn parse_nmap_services(text: &str) -> Option<(Vec<u16>, HashMap<u16, String>)> {
    let mut best: HashMap<u16, (f64, String)> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(port) = port_proto
            .strip_suffix("/tcp")
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let freq: f64 = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0.0);
        match best.get(&port) {
            Some((f, _)) if *f >= freq => {}
            _ => {
                best.insert(port, (freq, name.to_owned()));
            }
        }
    }
    if best.is_empty() {
        return None;
    }
    let mut ranked: Vec<(u16, f64)> = best.iter().map(|(p, (f, _))| (*p, *f)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = ranked.iter().take(TOP_COUNT).map(|(p, _)| *p).collect();
    let names = best.into_iter().map(|(p, (_, n))| (p, n)).collect();
    Some((top, names))
}

/// Parses `/etc/services` (`name  port/proto  [aliases]  [# comment]`): TCP names, the first
/// entry of a port winning.
pub fn parse_etc_services(text: &str) -> HashMap<u16, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let Some(port) = port_proto
            .strip_suffix("/tcp")
            .and_then(|p| p.parse::<u16>().ok())
        {
            names.entry(port).or_insert_with(|| name.to_owned());
        }
    }
    names
}

/// The ports of `--ports top`, most common first (see the module docs for where they come from).
pub fn top_ports() -> &'static [u16] {
    &table().top
}

/// The service name of a TCP port, if it has one.
///
/// ```
/// assert_eq!(opskit_net::services::service_name(22), Some("ssh"));
/// assert_eq!(opskit_net::services::service_name(443), Some("https"));
/// ```
pub fn service_name(port: u16) -> Option<&'static str> {
    table().names.get(&port).map(String::as_str)
}

/// Where the port list and names came from: `nmap-services (PATH)` or `built-in list`.
pub fn source() -> &'static str {
    &table().source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_top_is_a_thousand_distinct_ports_common_first() {
        let top = built_in_top();
        assert_eq!(top.len(), TOP_COUNT);
        let mut sorted = top.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), TOP_COUNT);
        assert_eq!(&top[..3], &[80, 443, 22]);
        for port in [5432, 6379, 3306, 27017, 6443, 9200] {
            assert!(top.contains(&port), "{port}");
        }
        let mut seen = std::collections::HashSet::new();
        assert!(
            COMMON_TCP.iter().all(|(p, _)| seen.insert(*p)),
            "duplicate in COMMON_TCP"
        );
    }

    #[test]
    fn nmap_services_format_is_ranked_by_frequency() {
        let text = "# a comment\n\
            ssh\t22/tcp\t0.182286\t# Secure Shell\n\
            domain\t53/udp\t0.213496\n\
            http\t80/tcp\t0.484143\n\
            telnet\t23/tcp\t0.221265\n\
            unknown\t1/tcp\t0.001\n";
        let (top, names) = parse_nmap_services(text).unwrap();
        assert_eq!(top, vec![80, 23, 22, 1]);
        assert_eq!(names.get(&22).map(String::as_str), Some("ssh"));
        assert!(!names.contains_key(&53));
        assert!(parse_nmap_services("# nothing\n").is_none());
    }

    #[test]
    fn etc_services_names() {
        let names = parse_etc_services("ssh\t\t22/tcp\t\t\t# SSH\nssh 22/udp\nwww 80/tcp http\n");
        assert_eq!(names.get(&22).map(String::as_str), Some("ssh"));
        assert_eq!(names.get(&80).map(String::as_str), Some("www"));
    }
}
