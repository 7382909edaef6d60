//! An in-process russh server for what sshd will not do on demand: a channel closed with no exit
//! status, a command killed by a signal, output that never ends.

use std::sync::Arc;
use std::time::Duration;

use opskit_ssh::known_hosts::KnownHosts;
use opskit_ssh::{ConnectOptions, Credentials, HostKeyPolicy, Outcome, Phase, run_one};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, Sig};
use secrecy::SecretString;

use crate::common::target;

#[derive(Clone)]
struct Fake;

impl server::Handler for Fake {
    type Error = russh::Error;

    async fn auth_password(&mut self, _user: &str, password: &str) -> Result<Auth, Self::Error> {
        if password == "slow" {
            // Never answers within the client's deadline.
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Ok(if password == "pw" {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let handle = session.handle();
        let command = String::from_utf8_lossy(data).to_string();
        tokio::spawn(async move {
            match command.as_str() {
                "no-exit" => {
                    let _ = handle.data(channel, &b"partial\n"[..]).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                }
                "killed" => {
                    let _ = handle.data(channel, &b"working\n"[..]).await;
                    let _ = handle
                        .exit_signal_request(
                            channel,
                            Sig::KILL,
                            false,
                            "killed".into(),
                            "en".into(),
                        )
                        .await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                }
                "forever" => loop {
                    if handle.data(channel, &b"y\n"[..]).await.is_err() {
                        break;
                    }
                    tokio::task::yield_now().await;
                },
                _ => {
                    let _ = handle.exit_status_request(channel, 0).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                }
            }
        });
        Ok(())
    }
}

/// Starts the fake server on 127.0.0.1:0; returns its port and a known_hosts file trusting it.
async fn start(dir: &std::path::Path) -> (u16, std::path::PathBuf) {
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7u8; 32]));
    let public = key.public_key().to_openssh().unwrap();
    let config = Arc::new(server::Config {
        keys: vec![key],
        auth_rejection_time: Duration::from_millis(10),
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let config = config.clone();
            tokio::spawn(async move {
                if let Ok(session) = server::run_stream(config, stream, Fake).await {
                    let _ = session.await;
                }
            });
        }
    });
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, format!("[127.0.0.1]:{port} {public}\n")).unwrap();
    (port, kh)
}

fn opts(kh: &std::path::Path, timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(10),
        timeout,
        host_keys: Arc::new(HostKeyPolicy::new(KnownHosts::load(kh).unwrap(), false)),
        credentials: Arc::new(Credentials {
            password: Some(SecretString::from("pw".to_string())),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn channel_closed_without_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let (port, kh) = start(dir.path()).await;
    let r = run_one(
        0,
        &target("u", port),
        "no-exit",
        &opts(&kh, Duration::from_secs(30)),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::NoExitStatus, "{:?}", r.message);
    assert_eq!(r.stdout, b"partial\n");
}

#[tokio::test]
async fn command_killed_by_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (port, kh) = start(dir.path()).await;
    let r = run_one(
        0,
        &target("u", port),
        "killed",
        &opts(&kh, Duration::from_secs(30)),
        None,
    )
    .await;
    assert_eq!(
        r.outcome,
        Outcome::Signal {
            name: "KILL".into()
        },
        "{:?}",
        r.message
    );
    assert_eq!(r.outcome.to_string(), "signal (KILL)");
}

#[tokio::test]
async fn output_that_never_ends_hits_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (port, kh) = start(dir.path()).await;
    let r = run_one(
        0,
        &target("u", port),
        "forever",
        &opts(&kh, Duration::from_secs(2)),
        None,
    )
    .await;
    assert_eq!(
        r.outcome,
        Outcome::Timeout {
            phase: Phase::Command
        }
    );
    assert!(r.stdout.starts_with(b"y\ny\n"));
}

#[tokio::test]
async fn exit_zero_and_wrong_password_on_the_fake_server() {
    let dir = tempfile::tempdir().unwrap();
    let (port, kh) = start(dir.path()).await;
    let r = run_one(
        0,
        &target("u", port),
        "true",
        &opts(&kh, Duration::from_secs(30)),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    let mut o = opts(&kh, Duration::from_secs(30));
    o.credentials = Arc::new(Credentials {
        password: Some(SecretString::from("bad".to_string())),
        ..Default::default()
    });
    let r = run_one(0, &target("u", port), "true", &o, None).await;
    assert_eq!(r.outcome, Outcome::AuthFailed);
}

#[tokio::test]
async fn auth_that_never_answers_times_out_in_the_auth_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (port, kh) = start(dir.path()).await;
    let mut o = opts(&kh, Duration::from_secs(2));
    o.credentials = Arc::new(Credentials {
        password: Some(SecretString::from("slow".to_string())),
        ..Default::default()
    });
    let r = run_one(0, &target("u", port), "true", &o, None).await;
    assert_eq!(r.outcome, Outcome::Timeout { phase: Phase::Auth });
}

#[tokio::test]
async fn a_port_that_accepts_but_never_speaks_ssh_times_out_in_the_connect_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (_, kh) = start(dir.path()).await;
    // Accepts TCP connections (the kernel does) but never sends an SSH banner.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut o = opts(&kh, Duration::from_secs(30));
    o.connect_timeout = Duration::from_secs(1);
    let r = run_one(0, &target("u", port), "true", &o, None).await;
    assert_eq!(
        r.outcome,
        Outcome::Timeout {
            phase: Phase::Connect
        }
    );
    drop(silent);
}
