//! Commands against real OpenSSH sshd.

use std::process::Command;
use std::time::Duration;

use opskit_ssh::{
    Credentials, Event, EventSink, FanOut, Outcome, Phase, Stream, load_identity, run_command,
    run_one,
};
use secrecy::SecretString;

use crate::common::{closed_port, options, sshd};

#[tokio::test]
async fn key_auth_runs_a_command_and_keeps_stdout_and_stderr_apart() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&s.known_hosts(dir.path()), false, s.key_creds());
    let r = run_one(
        0,
        &s.target(s.port()),
        "echo out; echo err >&2",
        &opts,
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    assert_eq!(r.stdout, b"out\n");
    assert_eq!(r.stderr, b"err\n");
}

#[tokio::test]
async fn remote_exit_codes_are_told_apart_from_ssh_failures() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&s.known_hosts(dir.path()), false, s.key_creds());
    let t = s.target(s.port());
    for (cmd, want) in [
        ("exit 0", Outcome::Ok),
        ("exit 3", Outcome::Failed { exit_code: Some(3) }),
        (
            "exit 255",
            Outcome::Failed {
                exit_code: Some(255),
            },
        ),
    ] {
        let r = run_one(0, &t, cmd, &opts, None).await;
        assert_eq!(r.outcome, want, "{cmd}: {:?}", r.message);
    }
    // The same 255 from an SSH failure is a different outcome.
    let r = run_one(0, &s.target(closed_port()), "true", &opts, None).await;
    assert_eq!(r.outcome, Outcome::Unreachable);
    assert_eq!(r.outcome.exit_code(), None);
}

#[tokio::test]
async fn ecdsa_and_passphrase_protected_rsa_keys_authenticate() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kh = s.known_hosts(dir.path());
    assert!(matches!(
        load_identity(&s.key_rsa, None),
        Err(opskit_ssh::Error::KeyEncrypted { .. })
    ));
    assert!(load_identity(&s.key_rsa, Some(&SecretString::from("wrong".to_string()))).is_err());
    let rsa = load_identity(&s.key_rsa, Some(&SecretString::from(s.passphrase.clone()))).unwrap();
    let ecdsa = load_identity(&s.key_ecdsa, None).unwrap();
    for id in [rsa, ecdsa] {
        let creds = Credentials {
            identities: vec![id],
            ..Default::default()
        };
        let r = run_one(
            0,
            &s.target(s.port()),
            "whoami",
            &options(&kh, false, creds),
            None,
        )
        .await;
        assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
        assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), s.user);
    }
}

#[tokio::test]
async fn password_auth_and_wrong_password() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kh = s.known_hosts(dir.path());
    let r = run_one(
        0,
        &s.target(s.port()),
        "true",
        &options(&kh, false, s.password_creds(&s.password)),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    let r = run_one(
        0,
        &s.target(s.port()),
        "true",
        &options(&kh, false, s.password_creds("not-the-password")),
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::AuthFailed);
    assert!(r.message.unwrap().contains("password"));
}

#[tokio::test]
async fn agent_auth() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::yield_now();
    }
    let added = Command::new("ssh-add")
        .arg(&s.key_ecdsa)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{:?}", added);
    let creds = Credentials {
        agent_socket: Some(sock.clone()),
        ..Default::default()
    };
    let r = run_one(
        0,
        &s.target(s.port()),
        "echo via-agent",
        &options(&s.known_hosts(dir.path()), false, creds),
        None,
    )
    .await;
    agent.kill().ok();
    agent.wait().ok();
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    assert_eq!(r.stdout, b"via-agent\n");
}

#[tokio::test]
async fn a_command_that_outlives_the_deadline_times_out_in_the_command_phase() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&s.known_hosts(dir.path()), false, s.key_creds());
    opts.timeout = Duration::from_secs(2);
    let r = run_one(
        0,
        &s.target(s.port()),
        "echo started; sleep 60",
        &opts,
        None,
    )
    .await;
    assert_eq!(
        r.outcome,
        Outcome::Timeout {
            phase: Phase::Command
        }
    );
    assert_eq!(r.stdout, b"started\n");
}

#[tokio::test]
async fn fan_out_over_several_ports_streams_lines_and_reports_in_order() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&s.known_hosts(dir.path()), false, s.key_creds());
    let mut targets: Vec<_> = s.ports.iter().map(|p| s.target(*p)).collect();
    targets.push(s.target(closed_port()));
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let sink: EventSink = std::sync::Arc::new(move |e| {
        if let Event::Line { host, stream, line } = e {
            l2.lock().unwrap().push((host, stream, line));
        }
    });
    let reports = run_command(
        targets,
        "echo one; echo two; exit 3".into(),
        opts,
        FanOut {
            forks: 2,
            fail_fast: false,
        },
        Some(sink),
    )
    .await;
    assert_eq!(reports.len(), s.ports.len() + 1);
    for r in &reports[..s.ports.len()] {
        assert_eq!(r.outcome, Outcome::Failed { exit_code: Some(3) });
        assert_eq!(r.stdout, b"one\ntwo\n");
    }
    assert_eq!(reports.last().unwrap().outcome, Outcome::Unreachable);
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2 * s.ports.len());
    assert!(lines.iter().all(|(_, st, _)| *st == Stream::Stdout));
}

#[tokio::test]
async fn fail_fast_skips_hosts_not_yet_started() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&s.known_hosts(dir.path()), false, s.key_creds());
    let mut targets = vec![s.target(closed_port())];
    targets.extend(s.ports.iter().map(|p| s.target(*p)));
    let reports = run_command(
        targets,
        "true".into(),
        opts,
        FanOut {
            forks: 1,
            fail_fast: true,
        },
        None,
    )
    .await;
    assert_eq!(reports[0].outcome, Outcome::Unreachable);
    assert!(reports[1..].iter().all(|r| r.outcome == Outcome::Skipped));
}

#[tokio::test]
async fn captured_output_is_bounded() {
    let Some(s) = sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&s.known_hosts(dir.path()), false, s.key_creds());
    let r = run_one(
        0,
        &s.target(s.port()),
        "head -c 20000000 /dev/zero",
        &opts,
        None,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.message);
    assert_eq!(r.stdout.len(), opskit_ssh::MAX_CAPTURE);
    assert!(r.message.unwrap().contains("not kept"));
}
