//! Host-key checking against real sshd: unknown, accepted-new, changed, hashed, [host]:port,
//! wildcards, negation and @revoked.

use opskit_ssh::known_hosts::hash_host_name;
use opskit_ssh::{Outcome, run_one};

use crate::common::{Sshd, options, sshd};

const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

fn host_key(s: &Sshd) -> String {
    s.host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn outcome_with(s: &Sshd, known_hosts: &str, accept_new: bool) -> opskit_ssh::HostReport {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    std::fs::write(&path, known_hosts).unwrap();
    run_one(
        0,
        &s.target(s.port()),
        "true",
        &options(&path, accept_new, s.key_creds()),
        None,
    )
    .await
}

#[tokio::test]
async fn unknown_host_is_refused_with_type_fingerprint_and_how_to_accept() {
    let Some(s) = sshd() else { return };
    let r = outcome_with(&s, "", false).await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
    let msg = r.message.unwrap();
    assert!(
        msg.contains("ssh-ed25519") && msg.contains("SHA256:") && msg.contains("--accept-new"),
        "{msg}"
    );
}

#[tokio::test]
async fn accept_new_records_the_key_and_it_is_trusted_afterwards() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("known_hosts");
    let r = run_one(
        0,
        &s.target(s.port()),
        "true",
        &options(&path, true, s.key_creds()),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    assert!(r.host_key.unwrap().added);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(&format!("[127.0.0.1]:{} {}", s.port(), host_key(&s))),
        "{text}"
    );
    let r = run_one(
        0,
        &s.target(s.port()),
        "true",
        &options(&path, false, s.key_creds()),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok);
}

#[tokio::test]
async fn changed_key_is_refused_with_file_and_line_even_with_accept_new() {
    let Some(s) = sshd() else { return };
    let kh = format!(
        "# comment\nother.example {OTHER_KEY}\n[127.0.0.1]:{} {OTHER_KEY}\n",
        s.port()
    );
    for accept_new in [false, true] {
        let r = outcome_with(&s, &kh, accept_new).await;
        assert_eq!(r.outcome, Outcome::HostkeyChanged);
        let msg = r.message.unwrap();
        assert!(msg.contains("known_hosts:3"), "{msg}");
        assert!(msg.contains("CHANGED"), "{msg}");
    }
}

#[tokio::test]
async fn hashed_entries_match() {
    let Some(s) = sshd() else { return };
    let name = hash_host_name(
        &format!("[127.0.0.1]:{}", s.port()),
        b"01234567890123456789",
    );
    let r = outcome_with(&s, &format!("{name} {}\n", host_key(&s)), false).await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    // A hash of another name does not.
    let name = hash_host_name("[127.0.0.1]:1", b"01234567890123456789");
    let r = outcome_with(&s, &format!("{name} {}\n", host_key(&s)), false).await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
}

#[tokio::test]
async fn port_is_part_of_the_name_and_wildcards_and_negation_work() {
    let Some(s) = sshd() else { return };
    let key = host_key(&s);
    // Listed for port 22 only: not known on our port.
    let r = outcome_with(&s, &format!("127.0.0.1 {key}\n"), false).await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
    let r = outcome_with(&s, &format!("[127.0.0.?]:{} {key}\n", s.port()), false).await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    let r = outcome_with(
        &s,
        &format!("[127.*]:*,![127.0.0.1]:{} {key}\n", s.port()),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
}

#[tokio::test]
async fn revoked_key_is_refused_even_when_also_listed() {
    let Some(s) = sshd() else { return };
    let key = host_key(&s);
    let kh = format!("[127.0.0.1]:{} {key}\n@revoked * {key}\n", s.port());
    let r = outcome_with(&s, &kh, false).await;
    assert_eq!(r.outcome, Outcome::HostkeyChanged);
    let msg = r.message.unwrap();
    assert!(
        msg.contains("@revoked") && msg.contains("known_hosts:2"),
        "{msg}"
    );
}

#[tokio::test]
async fn host_certificate_signed_by_a_trusted_ca_is_accepted() {
    let Some(s) = sshd() else { return };
    let Ok(ca) = std::env::var("OPSKIT_TEST_SSHD_HOST_CA_PUB") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "OPSKIT_TEST_SSHD_HOST_CA_PUB missing"
        );
        return;
    };
    let ca = ca.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    // Only the CA is listed: the server's certificate is what makes it trusted.
    let r = outcome_with(&s, &format!("@cert-authority [127.0.0.1]:* {ca}\n"), false).await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    // A CA listed for other hosts only does not help.
    let r = outcome_with(&s, &format!("@cert-authority *.example.com {ca}\n"), false).await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
    // Another CA for this host: not trusted by CA, and the plain key is not listed.
    let r = outcome_with(
        &s,
        &format!("@cert-authority [127.0.0.1]:* {OTHER_KEY}\n"),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
    // Another CA, but the plain key is listed: OpenSSH's fallback to the plain key.
    let kh = format!(
        "@cert-authority [127.0.0.1]:* {OTHER_KEY}\n[127.0.0.1]:{} {}\n",
        s.port(),
        host_key(&s)
    );
    let r = outcome_with(&s, &kh, false).await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    // A @revoked CA key wins.
    let kh = format!("@cert-authority [127.0.0.1]:* {ca}\n@revoked * {ca}\n");
    let r = outcome_with(&s, &kh, false).await;
    assert_eq!(r.outcome, Outcome::HostkeyChanged);
}

#[tokio::test]
async fn cert_authority_lines_are_recognised_not_taken_as_host_keys() {
    let Some(s) = sshd() else { return };
    let key = host_key(&s);
    let r = outcome_with(
        &s,
        &format!("@cert-authority [127.0.0.1]:{} {key}\n", s.port()),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::HostkeyUnknown);
}
