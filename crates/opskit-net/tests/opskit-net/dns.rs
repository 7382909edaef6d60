//! DNS against dnsmasq on loopback (scripts/services/dnsmasq.sh) and the system resolver.

use std::net::IpAddr;
use std::time::Duration;

use opskit_net::Error;
use opskit_net::dns::{DnsOptions, RecordKind, lookup, lookup_addresses, reverse};

use crate::support::dns_server;

fn opts() -> Option<DnsOptions> {
    Some(DnsOptions {
        server: Some(dns_server()?),
        timeout: Duration::from_secs(5),
    })
}

fn values(recs: &[opskit_net::dns::DnsRecord], ty: &str) -> Vec<String> {
    recs.iter()
        .filter(|r| r.record_type == ty)
        .map(|r| r.value.clone())
        .collect()
}

#[tokio::test]
async fn a_and_aaaa_records() {
    let Some(o) = opts() else { return };
    let a = lookup("web01.test", RecordKind::A, &o).await.unwrap();
    assert_eq!(values(&a, "A"), ["10.0.0.11"]);
    let aaaa = lookup("web01.test", RecordKind::Aaaa, &o).await.unwrap();
    assert_eq!(values(&aaaa, "AAAA"), ["fd00::11"]);
    let all = lookup_addresses("web01.test", &o).await.unwrap();
    let mut got: Vec<String> = all.iter().map(|r| r.value.clone()).collect();
    got.sort();
    assert_eq!(got, ["10.0.0.11", "fd00::11"]);
}

#[tokio::test]
async fn mx_and_txt_records() {
    let Some(o) = opts() else { return };
    let mx = lookup("test", RecordKind::Mx, &o).await.unwrap();
    assert_eq!(values(&mx, "MX"), ["10 mail.test."]);
    let txt = lookup("test", RecordKind::Txt, &o).await.unwrap();
    assert_eq!(values(&txt, "TXT"), ["v=spf1 -all"]);
}

#[tokio::test]
async fn reverse_lookup_finds_the_ptr() {
    let Some(o) = opts() else { return };
    let ip: IpAddr = "10.0.0.11".parse().unwrap();
    let ptr = reverse(ip, &o).await.unwrap();
    assert_eq!(values(&ptr, "PTR"), ["web01.test."]);
    assert_eq!(ptr[0].name, "11.0.0.10.in-addr.arpa.");
    // --type PTR with an address asks for the same name.
    let same = lookup("10.0.0.11", RecordKind::Ptr, &o).await.unwrap();
    assert_eq!(values(&same, "PTR"), ["web01.test."]);
}

#[tokio::test]
async fn a_name_without_records_is_a_clear_error() {
    let Some(o) = opts() else { return };
    let err = lookup("nothing.test", RecordKind::Txt, &o)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DnsNoRecords { .. }), "{err}");
    assert_eq!(err.to_string(), "no TXT records for nothing.test");
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    // A UDP socket that never answers, on loopback.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let o = DnsOptions {
        server: Some(silent.local_addr().unwrap()),
        timeout: Duration::from_millis(300),
    };
    let err = lookup("web01.test", RecordKind::A, &o).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { .. } | Error::Dns { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn the_system_resolver_gives_every_address_of_localhost() {
    let recs = lookup_addresses("localhost", &DnsOptions::default())
        .await
        .unwrap();
    let vals: Vec<&str> = recs.iter().map(|r| r.value.as_str()).collect();
    assert!(vals.contains(&"127.0.0.1"), "{vals:?}");
    assert!(recs.iter().all(|r| r.ttl.is_none()));
}

#[tokio::test]
async fn cname_and_srv_records() {
    let Some(o) = opts() else { return };
    let cname = lookup("www.test", RecordKind::Cname, &o).await.unwrap();
    assert_eq!(values(&cname, "CNAME"), ["web01.test."]);
    // An A query shows the chain: the CNAME, then the address.
    let a = lookup("www.test", RecordKind::A, &o).await.unwrap();
    assert_eq!(values(&a, "CNAME"), ["web01.test."]);
    assert_eq!(values(&a, "A"), ["10.0.0.11"]);
    let srv = lookup("_http._tcp.test", RecordKind::Srv, &o)
        .await
        .unwrap();
    assert_eq!(values(&srv, "SRV"), ["10 5 8080 web01.test."]);
}
