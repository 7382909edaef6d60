//! Issue 14, inventory-driven monitors: `[[template]]`s of `opskit serve --monitor-config`
//! follow the servers API with no restart, and `opskit ssh run --inventory` reads the same
//! inventory from the database directly (`--inventory-database`) against the test sshd.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};

/// A running `opskit serve` on a temp SQLite database, killed on drop.
struct Serve {
    child: std::process::Child,
    addr: String,
    db: String,
    key: String,
    /// serve's log lines (JSON), read to the end so serve never blocks on a full pipe.
    log: Receiver<String>,
    dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `opskit serve` on 127.0.0.1:0 with `extra` flags, waits (with a deadline) for its
/// "listening" line, and makes an admin API key.
fn serve(extra: &[&str], dir: tempfile::TempDir) -> Serve {
    let db = format!("sqlite://{}", dir.path().join("inv.db").display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .args(["--log-format", "json", "--rate-limit", "0"])
        .args(extra)
        .env("OPSKIT_ADMIN_PASSWORD", "admin-password-1")
        .env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("opskit serve did not start");
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "opskit serve listening"
        {
            break v["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let out = Command::cargo_bin("opskit")
        .unwrap()
        .args(["apikey", "--database", &db, "create", "inventory-test"])
        .env_remove("OPSKIT_DATABASE")
        .assert()
        .success();
    let key = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    Serve {
        child,
        addr,
        db,
        key,
        log: rx,
        dir,
    }
}

impl Serve {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn create(&self, hostname: &str, ip: &str, env: &str, tags: &[&str]) -> Value {
        let r = self
            .client()
            .post(self.url("/api/v1/servers"))
            .header("X-API-Key", &self.key)
            .json(&json!({"hostname": hostname, "ip": ip, "env": env, "tags": tags}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        r.json().await.unwrap()
    }

    async fn patch(&self, id: &str, body: Value) {
        let r = self
            .client()
            .patch(self.url(&format!("/api/v1/servers/{id}")))
            .header("X-API-Key", &self.key)
            .header("Content-Type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    async fn delete(&self, id: &str) {
        let r = self
            .client()
            .delete(self.url(&format!("/api/v1/servers/{id}")))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{:?}", r.text().await);
    }
}

struct Sshd {
    port: u16,
    host_pub: String,
    user: String,
    key: String,
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

fn sshd() -> Option<Sshd> {
    Some(Sshd {
        port: var("OPSKIT_TEST_SSHD_PORT")?.parse().unwrap(),
        host_pub: var("OPSKIT_TEST_SSHD_HOST_PUB")?,
        user: var("OPSKIT_TEST_SSH_USER")?,
        key: var("OPSKIT_TEST_SSH_KEY")?,
    })
}

/// `opskit ssh run` with an isolated HOME and a known_hosts file for the test sshd.
fn ssh_run(s: &Sshd, home: &std::path::Path) -> Command {
    let kh: PathBuf = home.join("known_hosts");
    let key = s
        .host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {key}\n", s.port)).unwrap();
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_PROFILE")
        .args(["ssh", "run", "-u", &s.user, "-i", &s.key, "--known-hosts"])
        .arg(&kh)
        .args(["-p", &s.port.to_string()]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_run_inventory_reads_serves_database_directly() {
    let Some(s) = sshd() else { return };
    let srv = serve(&[], tempfile::tempdir().unwrap());
    for (host, env, tags) in [
        ("web1", "prod", &["web"][..]),
        ("web2", "prod", &["web", "linux"]),
        ("dev1", "dev", &["web"]),
        ("db1", "prod", &["db"]),
    ] {
        srv.create(host, "127.0.0.1", env, tags).await;
    }
    let home = tempfile::tempdir().unwrap();

    // while serve runs on it, no profile, no API: the database is read directly
    let out = ssh_run(&s, home.path())
        .args(["--inventory", "env=prod,tag=web"])
        .args(["--inventory-database", &srv.db])
        .args(["--output", "json", "--", "echo", "hi"])
        .assert()
        .code(0);
    let reports: Vec<Value> = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let mut hosts: Vec<&str> = reports
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["web1", "web2"], "{reports:?}");
    for r in &reports {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["stdout"], "hi\n", "{r}");
    }

    // OPSKIT_DATABASE (serve's own variable) works as well
    ssh_run(&s, home.path())
        .env("OPSKIT_DATABASE", &srv.db)
        .args([
            "--inventory",
            "tag=db",
            "--output",
            "json",
            "--",
            "echo",
            "hi",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("\"db1\""));

    // the same errors as through the API: a bad selector (exit 2), no match (exit 1)
    ssh_run(&s, home.path())
        .args(["--inventory", "env=prod,colour=red"])
        .args(["--inventory-database", &srv.db, "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`env=prod,colour=red`"))
        .stderr(predicate::str::contains("unknown key `colour`"));
    ssh_run(&s, home.path())
        .args(["--inventory", "env=staging"])
        .args(["--inventory-database", &srv.db, "--", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no server in the inventory matches `env=staging`",
        ));

    // a database that is not there is named, and not created
    let missing = srv.dir.path().join("nope.db");
    ssh_run(&s, home.path())
        .args(["--inventory", "env=prod"])
        .arg("--inventory-database")
        .arg(format!("sqlite://{}", missing.display()))
        .args(["--", "true"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot open the inventory database",
        ))
        .stderr(predicate::str::contains("nope.db"));
    assert!(!missing.exists());
}
