//! The built-in table of TCP ports: the 1,000 most common ones in nmap's frequency order (the
//! default of `scan`) and well-known service names.
//!
//! The data lives in `services_table.rs`, generated once from nmap's `nmap-services` by
//! `crates/opskit-net/gen/services.py` (see the header of that file).

include!("services_table.rs");

/// The 1,000 most common open TCP ports, most frequent first (the same set as
/// `nmap --top-ports 1000`).
pub fn top_ports() -> &'static [u16] {
    &TOP_TCP_PORTS
}

/// The well-known service name of a TCP port, if it has one.
///
/// ```
/// assert_eq!(opskit_net::services::service_name(22), Some("ssh"));
/// assert_eq!(opskit_net::services::service_name(443), Some("https"));
/// ```
pub fn service_name(port: u16) -> Option<&'static str> {
    TCP_SERVICES
        .binary_search_by_key(&port, |(p, _)| *p)
        .ok()
        .map(|i| TCP_SERVICES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sane() {
        assert!(TCP_SERVICES.windows(2).all(|w| w[0].0 < w[1].0));
        let mut top = TOP_TCP_PORTS.to_vec();
        top.sort_unstable();
        top.dedup();
        assert_eq!(top.len(), 1000);
        assert_eq!(service_name(80), Some("http"));
        assert_eq!(service_name(5432), Some("postgresql"));
        assert_eq!(service_name(3306), Some("mysql"));
    }
}
