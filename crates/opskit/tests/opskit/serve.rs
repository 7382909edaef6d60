//! `opskit serve`, `opskit user`, `opskit apikey`: real processes on a temp database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin;
use predicates::prelude::*;
use serde_json::{Value, json};

fn opskit() -> Command {
    let mut c = Command::cargo_bin("opskit").expect("binary built");
    c.env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_ADMIN_PASSWORD");
    c
}

fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("inv.db").display())
}

/// A running `opskit serve`; its stderr lines arrive on `lines`.
struct Served {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
}

// The child is handed to the caller, who kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start_serve(db: &str, admin_password: Option<&str>) -> Served {
    let mut cmd = StdCommand::new(cargo_bin("opskit"));
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--database",
        db,
        "--log-format",
        "json",
        "--rate-limit",
        "0",
    ])
    .env_remove("OPSKIT_ADMIN_PASSWORD")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(pw) = admin_password {
        cmd.env("OPSKIT_ADMIN_PASSWORD", pw);
    }
    let mut child = cmd.spawn().expect("spawn opskit serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("serve did not start: {seen:?}"));
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "opskit serve listening"
        {
            let addr = v["fields"]["addr"].as_str().expect("addr").to_owned();
            return Served {
                child,
                addr,
                lines: rx,
            };
        }
        seen.push(line);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn user_commands_manage_users() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    opskit()
        .args([
            "user",
            "--database",
            &db,
            "add",
            "bob",
            "--role",
            "operator",
            "--password-stdin",
        ])
        .write_stdin("correct-horse-1\n")
        .assert()
        .success()
        .stderr(predicate::str::contains("created user bob (operator)"));
    // a generated password is printed once
    let out = opskit()
        .args(["user", "--database", &db, "add", "carol"])
        .assert()
        .success();
    let generated = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(generated.trim().len() >= 16);
    opskit()
        .args(["user", "--database", &db, "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("bob").and(predicate::str::contains("operator")))
        .stdout(predicate::str::contains("carol").and(predicate::str::contains("viewer")));
    opskit()
        .args(["user", "--database", &db, "passwd", "bob"])
        .env("OPSKIT_USER_PASSWORD", "another-pass-2")
        .assert()
        .success();
    opskit()
        .args(["user", "--database", &db, "remove", "bob"])
        .assert()
        .success();
    opskit()
        .args(["user", "--database", &db, "remove", "bob"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no user named \"bob\""));
    let out = opskit()
        .args(["user", "--database", &db, "list", "--json"])
        .assert()
        .success();
    let list: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // bad input is a usage error with a reason
    opskit()
        .args(["user", "--database", &db, "add", "dave", "--role", "root"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown role"));
    opskit()
        .args(["user", "--database", &db, "add", "dave", "--password-stdin"])
        .write_stdin("short\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at least 8"));
    opskit()
        .args(["user", "--database", "mysql://x", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sqlite://"));
}

#[test]
fn apikey_commands_and_serve_work_on_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    let out = opskit()
        .args([
            "apikey",
            "--database",
            &db,
            "create",
            "ci-bot",
            "--role",
            "operator",
        ])
        .assert()
        .success();
    let key = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("opk_"), "{key}");
    opskit()
        .args(["apikey", "--database", &db, "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ci-bot").and(predicate::str::contains("active")))
        .stdout(predicate::str::contains(&key).not());

    let mut served = start_serve(&db, None);
    let base = format!("http://{}", served.addr);
    rt().block_on(async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let r = c
            .post(format!("{base}/api/v1/servers"))
            .header("x-api-key", &key)
            .json(&json!({"hostname": "cli01", "ip": "10.0.0.1", "env": "prod"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    });
    opskit()
        .args(["apikey", "--database", &db, "revoke", "ci-bot"])
        .assert()
        .success();
    rt().block_on(async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let r = c
            .get(format!("{base}/api/v1/servers"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    });
    served.child.kill().unwrap();
    let _ = served.child.wait();
    let _ = served.lines.try_recv();
}

#[test]
fn first_start_prints_a_generated_admin_password_and_sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    // the password line is printed before the listening line
    let mut cmd = StdCommand::new(cargo_bin("opskit"));
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--database",
        &db,
        "--log-format",
        "json",
    ])
    .env_remove("OPSKIT_ADMIN_PASSWORD")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut password = None;
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while addr.is_none() && Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(pw) = line.strip_prefix("created user `admin` with password: ") {
            password = Some(pw.trim().to_owned());
        }
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "opskit serve listening"
        {
            addr = v["fields"]["addr"].as_str().map(str::to_owned);
        }
    }
    let password = password.expect("generated admin password printed");
    let addr = addr.expect("listening");
    rt().block_on(async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let r = c
            .post(format!("http://{addr}/auth/login"))
            .json(&json!({"username": "admin", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let status = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
    // a second start does not print a password again
    let mut served = start_serve(&db, None);
    served.child.kill().unwrap();
    let _ = served.child.wait();
    let rest: Vec<String> = served.lines.try_iter().collect();
    assert!(!rest.iter().any(|l| l.contains("with password")));
}

#[test]
fn serve_rejects_a_bad_database_url() {
    opskit()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database",
            "redis://localhost",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sqlite://"));
}

/// Concurrent creates, `kill -9` in the middle, restart: every create that was acknowledged
/// with a 201 is still there.
#[test]
fn acknowledged_creates_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(&dir);
    let out = opskit()
        .args(["apikey", "--database", &db, "create", "writer"])
        .assert()
        .success();
    let key = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    let mut served = start_serve(&db, Some("admin-password-1"));
    let base = format!("http://{}", served.addr);
    let (ack_tx, ack_rx) = mpsc::channel::<String>();
    let runtime = rt();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let base = base.clone();
            let key = key.clone();
            let ack_tx = ack_tx.clone();
            runtime.spawn(async move {
                let c = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                for i in 0..10_000 {
                    let hostname = format!("w{w}-n{i}");
                    let r = c
                        .post(format!("{base}/api/v1/servers"))
                        .header("x-api-key", &key)
                        .json(&json!({"hostname": hostname, "ip": "10.0.0.1", "env": "prod"}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 201 => {
                            if ack_tx.send(hostname).is_err() {
                                return;
                            }
                        }
                        _ => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    drop(ack_tx);
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < 300 {
        let left = deadline.saturating_duration_since(Instant::now());
        acked.push(ack_rx.recv_timeout(left).expect("creates are acknowledged"));
    }
    // kill -9 while the writers are still sending
    served.child.kill().unwrap();
    let _ = served.child.wait();
    for w in writers {
        let _ = runtime.block_on(w);
    }
    acked.extend(ack_rx.try_iter());
    let mut served = start_serve(&db, None);
    let base = format!("http://{}", served.addr);
    let stored: std::collections::HashSet<String> = runtime.block_on(async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut all = std::collections::HashSet::new();
        let mut page = 1;
        loop {
            let r: Value = c
                .get(format!("{base}/api/v1/servers?per_page=200&page={page}"))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for s in r["data"].as_array().unwrap() {
                all.insert(s["hostname"].as_str().unwrap().to_owned());
            }
            if page >= r["total_pages"].as_u64().unwrap() {
                break;
            }
            page += 1;
        }
        all
    });
    let missing: Vec<&String> = acked.iter().filter(|h| !stored.contains(*h)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost: {missing:?}",
        missing.len()
    );
    assert!(stored.len() >= acked.len());
    served.child.kill().unwrap();
    let _ = served.child.wait();
    let _ = std::io::stderr().flush();
}
