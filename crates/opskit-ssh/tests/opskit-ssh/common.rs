use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opskit_ssh::known_hosts::KnownHosts;
use opskit_ssh::{ConnectOptions, Credentials, HostKeyPolicy, Target, load_identity};
use secrecy::SecretString;

/// The sshd started by scripts/services/sshd.sh.
pub struct Sshd {
    pub ports: Vec<u16>,
    pub host_pub: String,
    pub user: String,
    pub password: String,
    pub key: PathBuf,
    pub key_ecdsa: PathBuf,
    pub key_rsa: PathBuf,
    pub passphrase: String,
}

fn var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{name} is not set: scripts/services/sshd.sh must start sshd under CI");
            }
            eprintln!("skipping: {name} is not set (run scripts/test to start sshd)");
            None
        }
    }
}

pub fn sshd() -> Option<Sshd> {
    let ports = var("OPSKIT_TEST_SSHD_PORTS")?
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();
    Some(Sshd {
        ports,
        host_pub: var("OPSKIT_TEST_SSHD_HOST_PUB")?,
        user: var("OPSKIT_TEST_SSH_USER")?,
        password: var("OPSKIT_TEST_SSH_PASSWORD")?,
        key: var("OPSKIT_TEST_SSH_KEY")?.into(),
        key_ecdsa: var("OPSKIT_TEST_SSH_KEY_ECDSA")?.into(),
        key_rsa: var("OPSKIT_TEST_SSH_KEY_RSA")?.into(),
        passphrase: var("OPSKIT_TEST_SSH_KEY_PASSPHRASE")?,
    })
}

impl Sshd {
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    pub fn target(&self, port: u16) -> Target {
        target(&self.user, port)
    }

    /// A known_hosts file in `dir` trusting the server's key on every port.
    pub fn known_hosts(&self, dir: &Path) -> PathBuf {
        let path = dir.join("known_hosts");
        let key = self
            .host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let text: String = self
            .ports
            .iter()
            .map(|p| format!("[127.0.0.1]:{p} {key}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn key_creds(&self) -> Credentials {
        Credentials {
            identities: vec![load_identity(&self.key, None).unwrap()],
            ..Default::default()
        }
    }

    pub fn password_creds(&self, password: &str) -> Credentials {
        Credentials {
            password: Some(SecretString::from(password.to_string())),
            ..Default::default()
        }
    }
}

pub fn target(user: &str, port: u16) -> Target {
    Target {
        label: format!("{user}@127.0.0.1:{port}"),
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        identity_files: Vec::new(),
        ignored_directives: Vec::new(),
        jump: Vec::new(),
    }
}

pub fn options(known_hosts: &Path, accept_new: bool, creds: Credentials) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(60),
        host_keys: Arc::new(HostKeyPolicy::new(
            KnownHosts::load(known_hosts).unwrap(),
            accept_new,
        )),
        credentials: Arc::new(creds),
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
