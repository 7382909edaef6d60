//! Issue 14, inventory-driven monitors: `[[template]]`s of `opskit serve --monitor-config`
//! follow the servers API with no restart, and `opskit ssh run --inventory` reads the same
//! inventory from the database directly (`--inventory-database`) against the test sshd.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::support;

/// A running `opskit serve` on a temp SQLite database with an admin API key, killed on drop.
struct Serve {
    s: support::Serve,
    db: String,
    key: String,
    dir: tempfile::TempDir,
}

/// Starts `opskit serve` on 127.0.0.1:0 with `extra` flags, waits (with a deadline) for its
/// "listening" line, and makes an admin API key.
fn serve(extra: &[&str], dir: tempfile::TempDir) -> Serve {
    let db = format!("sqlite://{}", dir.path().join("inv.db").display());
    serve_on(&db, extra, dir)
}

/// [`serve`] on the database `db`.
fn serve_on(db: &str, extra: &[&str], dir: tempfile::TempDir) -> Serve {
    let s = support::Serve::start(db, extra);
    let out = Command::cargo_bin("opskit")
        .unwrap()
        .args(["apikey", "--database", db, "create"])
        .arg(format!("inventory-test-{}", s.pid()))
        .env_remove("OPSKIT_DATABASE")
        .assert()
        .success();
    let key = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    Serve {
        s,
        db: db.to_owned(),
        key,
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
        self.s.url(path)
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

/// A TCP listener on `ip:0` that accepts and closes every connection (so checks never fill
/// its backlog), for as long as the test runs.
fn listener(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

impl Serve {
    /// The monitors as `GET /api/v1/monitors` lists them: name → the monitor.
    async fn monitors(&self) -> std::collections::BTreeMap<String, Value> {
        let r = self
            .client()
            .get(self.url("/api/v1/monitors?per_page=200"))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let page: Value = r.json().await.unwrap();
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap().to_owned(), m.clone()))
            .collect()
    }

    /// Polls the monitors list (deadline 30 s) until `done` holds; the last list otherwise.
    async fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&std::collections::BTreeMap<String, Value>) -> bool,
    ) -> std::collections::BTreeMap<String, Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.monitors().await;
            if done(&now) {
                return now;
            }
            if Instant::now() >= deadline {
                let log = self.s.log();
                let log: Vec<&str> = log.lines().filter(|l| l.contains("monitor")).collect();
                panic!(
                    "{what}: not within 30 s; monitors now: {:?}; serve's monitor log: {log:#?}",
                    now.keys().collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn names(m: &std::collections::BTreeMap<String, Value>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_checks_follow_the_servers_api_with_no_restart() {
    let port = listener("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[defaults]
interval = "1s"
timeout = "1s"

[[monitor]]
name = "file listener"
kind = "tcp"
target = "127.0.0.1:{port}"

# every prod web server's port
[[template]]
selector = "env=prod,tag=web"
name = "tcp {{hostname}}"
group = "prod web"
kind = "tcp"
target = "{{ip}}:{port}"
"#
        ),
    )
    .unwrap();
    // the sources' own re-read is an hour away: what follows comes from the API writes
    let srv = serve(
        &[
            "--monitor-config",
            config.to_str().unwrap(),
            "--monitor-refresh",
            "1h",
        ],
        dir,
    );
    let pid = srv.s.pid();
    let m = srv
        .wait_for("the file's monitor", |m| names(m) == ["file listener"])
        .await;
    assert_eq!(m["file listener"]["origin"], "file");

    // servers created: a check per prod web server, at its own ip
    let web1 = srv.create("web1", "127.0.0.1", "prod", &["web"]).await;
    let web2 = srv
        .create("web2", "127.0.0.2", "prod", &["web", "linux"])
        .await;
    let db1 = srv.create("db1", "127.0.0.1", "prod", &["db"]).await;
    srv.create("dev1", "127.0.0.1", "dev", &["web"]).await;
    let m = srv
        .wait_for("checks of web1 and web2", |m| {
            names(m) == ["file listener", "tcp web1", "tcp web2"]
        })
        .await;
    for (name, ip) in [("tcp web1", "127.0.0.1"), ("tcp web2", "127.0.0.2")] {
        assert_eq!(m[name]["origin"], "inventory", "{}", m[name]);
        assert_eq!(m[name]["read_only"], true, "{}", m[name]);
        assert_eq!(m[name]["group"], "prod web", "{}", m[name]);
        assert_eq!(m[name]["target"], format!("{ip}:{port}"), "{}", m[name]);
    }
    // and they run: web1's ip has the listener, web2's (127.0.0.2) has none
    srv.wait_for("web1 up and web2 down", |m| {
        m.get("tcp web1").is_some_and(|x| x["state"] == "up")
            && m.get("tcp web2").is_some_and(|x| x["state"] == "down")
    })
    .await;

    // web1 leaves prod: its check goes
    srv.patch(web1["id"].as_str().unwrap(), json!({"env": "staging"}))
        .await;
    srv.wait_for("web1's check gone", |m| {
        names(m) == ["file listener", "tcp web2"]
    })
    .await;
    // db1 becomes a web server: its check comes
    srv.patch(db1["id"].as_str().unwrap(), json!({"tags": ["db", "web"]}))
        .await;
    let m = srv
        .wait_for("db1's check", |m| {
            names(m) == ["file listener", "tcp db1", "tcp web2"]
        })
        .await;
    assert_eq!(m["tcp db1"]["target"], format!("127.0.0.1:{port}"));
    // web2 moves to another address: its check follows
    srv.patch(web2["id"].as_str().unwrap(), json!({"ip": "127.0.0.1"}))
        .await;
    srv.wait_for("web2 at its new ip, up", |m| {
        m.get("tcp web2").is_some_and(|x| {
            x["target"] == format!("127.0.0.1:{port}").as_str() && x["state"] == "up"
        })
    })
    .await;
    // web2 deleted: its check goes; db1 decommissioned: its check goes
    srv.delete(web2["id"].as_str().unwrap()).await;
    srv.patch(
        db1["id"].as_str().unwrap(),
        json!({"status": "decommissioned"}),
    )
    .await;
    srv.wait_for("only the file's monitor left", |m| {
        names(m) == ["file listener"]
    })
    .await;

    // all of it without a restart
    assert_eq!(srv.s.pid(), pid);
    assert!(!srv.s.log().contains("opskit serve listening"));
}

/// Two replicas on one PostgreSQL database: a server written through one changes the checks of
/// the other within its --monitor-refresh, and `ssh run --inventory-database postgres://…`
/// reads the same inventory (read only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_follow_each_others_servers() {
    let Some(pg) = support::PgDb::create("inv").await else {
        return;
    };
    let port = listener("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\ninterval = \"1s\"\n\n[[template]]\nselector = \"env=prod\"\nname = \"tcp {{hostname}}\"\nkind = \"tcp\"\ntarget = \"{{ip}}:{port}\"\n"
        ),
    )
    .unwrap();
    let flags = [
        "--monitor-config",
        config.to_str().unwrap(),
        "--monitor-refresh",
        "1s",
    ];
    let a = serve_on(&pg.url, &flags, tempfile::tempdir().unwrap());
    let b = serve_on(&pg.url, &flags, tempfile::tempdir().unwrap());
    a.wait_for("no monitors yet", |m| m.is_empty()).await;

    // written through b, seen by a
    let web1 = b.create("web1", "127.0.0.1", "prod", &["web"]).await;
    b.create("dev1", "127.0.0.1", "dev", &[]).await;
    let m = a
        .wait_for("web1's check on the other replica", |m| {
            names(m) == ["tcp web1"]
        })
        .await;
    assert_eq!(m["tcp web1"]["origin"], "inventory");
    b.patch(web1["id"].as_str().unwrap(), json!({"env": "dev"}))
        .await;
    a.wait_for("web1's check gone on the other replica", |m| m.is_empty())
        .await;

    // the ssh path reads the same database
    if let Some(s) = sshd() {
        let home = tempfile::tempdir().unwrap();
        let out = ssh_run(&s, home.path())
            .args(["--inventory", "env=dev", "--inventory-database", &pg.url])
            .args(["--output", "json", "--", "echo", "hi"])
            .assert()
            .code(0);
        let reports: Vec<Value> = serde_json::from_slice(&out.get_output().stdout).unwrap();
        let mut hosts: Vec<&str> = reports
            .iter()
            .map(|r| r["host"].as_str().unwrap())
            .collect();
        hosts.sort_unstable();
        assert_eq!(hosts, ["dev1", "web1"], "{reports:?}");
    }
    drop(a);
    drop(b);
    pg.remove().await;
}

/// `opskit monitor validate` checks templates as serve loads them: counted when valid, a
/// mistake named by file, line and key (exit 2).
#[test]
fn validate_counts_templates_and_names_their_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitor.toml");
    let text = "[[monitor]]\nname = \"api\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:80\"\n\n[[template]]\nselector = \"env=prod\"\nname = \"ssh {hostname}\"\nkind = \"tcp\"\ntarget = \"{ip}:22\"\n";
    std::fs::write(&file, text).unwrap();
    Command::cargo_bin("opskit")
        .unwrap()
        .args(["monitor", "validate"])
        .arg(&file)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("valid: 1 monitors"))
        .stdout(predicate::str::contains("1 templates"));
    // a one-shot check runs the monitors and says the templates are serve's
    Command::cargo_bin("opskit")
        .unwrap()
        .args(["monitor", "check", "--config"])
        .arg(&file)
        .assert()
        .stdout(predicate::str::contains("api"))
        .stdout(predicate::str::contains("ssh ").not())
        .stderr(predicate::str::contains(
            "1 templates are applied to the inventory by `opskit serve --monitor-config`",
        ));
    for (from, to, says) in [
        (
            "{ip}:22",
            "{address}:22",
            ":6: template[ssh {hostname}].target: unknown placeholder {address}",
        ),
        (
            "env=prod",
            "env=prod,colour=red",
            ":6: template[ssh {hostname}].selector: bad selector `env=prod,colour=red`: unknown key `colour`",
        ),
    ] {
        std::fs::write(&file, text.replace(from, to)).unwrap();
        Command::cargo_bin("opskit")
            .unwrap()
            .args(["monitor", "validate"])
            .arg(&file)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}

/// `opskit monitor run` has no inventory: it runs the file's monitors and says so of the
/// templates.
#[test]
fn monitor_run_says_templates_are_left_to_serve() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitor.toml");
    std::fs::write(
        &file,
        "[[template]]\nselector = \"env=prod\"\nname = \"ssh {hostname}\"\nkind = \"tcp\"\ntarget = \"{ip}:22\"\n",
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["monitor", "run", "--config"])
        .arg(&file)
        .args(["--database", &db])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = support::lines_of(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("1 templates are applied to the inventory by `opskit serve") => {
                break true;
            }
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "{seen:#?}");
}
