//! Two `opskit monitor run` on one PostgreSQL database: one leader checks and alerts, the other
//! stands by; kill -9 or SIGSTOP of the leader hands the incident over without a lost or doubled
//! alert. Real binaries, a real PostgreSQL (OPSKIT_TEST_POSTGRES_URL), a local endpoint that the
//! test switches down and up, and a local webhook receiver.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::support::{
    self, Alerts, PgDb, poll, runtime, switch_endpoint, switch_monitor_config, webhook_receiver,
};

/// A running `opskit monitor run`, killed when dropped (also when the test fails).
struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn start(dir: &Path, n: &str, config: &Path, db: &str) -> Instance {
        let log = dir.join(format!("{n}.log"));
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
            .args([
                "monitor",
                "run",
                "--lease",
                "2s",
                "--database",
                db,
                "--config",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Instance { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        support::signal(self.pid(), sig);
    }

    fn is_holder(&self, holder: &str) -> bool {
        support::is_holder(self.pid(), holder)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(db: &str) -> Value {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["monitor", "status", "-o", "json", "--database", db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn leader(db: &str) -> Option<(String, i64)> {
    let v = status(db);
    let l = &v["leader"];
    (l["live"] == true).then(|| {
        (
            l["holder"].as_str().unwrap().to_string(),
            l["fencing_token"].as_i64().unwrap(),
        )
    })
}

fn counter(db: &str, field: &str) -> i64 {
    status(db)["monitors"][0][field].as_i64().unwrap_or(0)
}

/// Waits until `n` more checks of the same kind were recorded (the monitor keeps running).
fn more_checks(db: &str, field: &str, n: i64) {
    let from = counter(db, field);
    poll(&format!("{n} more results ({field})"), || {
        counter(db, field) >= from + n
    });
}

struct Setup {
    rt: tokio::runtime::Runtime,
    pg: PgDb,
    dir: tempfile::TempDir,
    config: PathBuf,
    code: Arc<AtomicU16>,
    alerts: Alerts,
}

fn setup() -> Option<Setup> {
    let rt = runtime();
    let pg = rt.block_on(PgDb::create("ha"))?;
    let code = Arc::new(AtomicU16::new(503));
    let svc = switch_endpoint(&rt, code.clone());
    let (hook, alerts) = webhook_receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.toml");
    std::fs::write(&config, switch_monitor_config(hook, svc)).unwrap();
    Some(Setup {
        rt,
        pg,
        dir,
        config,
        code,
        alerts,
    })
}

impl Setup {
    fn start(&self, n: &str) -> Instance {
        Instance::start(self.dir.path(), n, &self.config, &self.pg.url)
    }

    fn alerts(&self) -> Vec<(String, String, String)> {
        self.alerts.lock().unwrap().clone()
    }

    fn events(&self, event: &str) -> usize {
        support::events(&self.alerts, event)
    }

    /// Both instances up: one leads, the other follows.
    fn leader_of<'a>(&self, a: &'a Instance, b: &'a Instance) -> (&'a Instance, &'a Instance) {
        poll("a leader and a follower", || {
            leader(&self.pg.url).is_some()
                && (a.log().contains("following") || b.log().contains("following"))
        });
        let (holder, _) = leader(&self.pg.url).unwrap();
        if a.is_holder(&holder) {
            (a, b)
        } else {
            assert!(b.is_holder(&holder), "{holder} is neither instance");
            (b, a)
        }
    }

    /// Up again: exactly one "resolved" reaches the receiver, then nothing more.
    fn resolve_once(&self) {
        self.code.store(200, Ordering::SeqCst);
        poll("the resolved alert", || self.events("resolve") == 1);
        more_checks(&self.pg.url, "consecutive_successes", 4);
        poll("an empty outbox", || {
            status(&self.pg.url)["outbox"]["pending"] == 0
        });
        let alerts = self.alerts();
        assert_eq!(
            alerts.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
            ["trigger", "resolve"],
            "one down and one resolved alert: {alerts:?}"
        );
        assert_ne!(alerts[0].0, alerts[1].0, "two alerts, two webhook ids");
        assert_eq!(
            alerts[0].2, alerts[1].2,
            "the resolve closes the same incident"
        );
        assert!(status(&self.pg.url)["monitors"][0]["incident"].is_null());
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.rt.block_on(self.pg.remove());
    }
}

#[test]
fn monitor_ha_two_instances_on_one_database_send_one_alert() {
    let Some(s) = setup() else { return };
    let a = s.start("a");
    let b = s.start("b");
    let (lead, follow) = s.leader_of(&a, &b);
    poll("the down alert", || s.events("trigger") == 1);
    // The incident goes on: more failures are recorded, no second alert.
    more_checks(&s.pg.url, "consecutive_failures", 4);
    assert_eq!(s.alerts().len(), 1, "{:?}", s.alerts());
    assert!(
        lead.log().contains("leading (fencing token 1)"),
        "{}",
        lead.log()
    );
    assert!(
        !follow.log().contains("leading"),
        "the follower never led: {}",
        follow.log()
    );
    // The status says who leads, since when and with which token.
    let v = status(&s.pg.url);
    assert_eq!(v["leader"]["fencing_token"], 1);
    assert!(lead.is_holder(v["leader"]["holder"].as_str().unwrap()));
    assert!(v["leader"]["expires_ms"].as_i64() > v["leader"]["since_ms"].as_i64());
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["monitor", "status", "--database", &s.pg.url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!(":{}:", lead.pid())) && table.contains("fencing token 1"),
        "{table}"
    );
    s.resolve_once();
}

#[test]
fn monitor_ha_kill_9_of_the_leader_mid_incident_hands_it_over() {
    let Some(s) = setup() else { return };
    let a = s.start("a");
    let b = s.start("b");
    let (lead, follow) = s.leader_of(&a, &b);
    poll("the down alert", || s.events("trigger") == 1);
    poll("the delivery recorded", || {
        status(&s.pg.url)["outbox"]["pending"] == 0
    });
    let incident = status(&s.pg.url)["monitors"][0]["incident"]["id"].clone();
    assert!(incident.is_string());

    lead.signal("-KILL");
    let killed = Instant::now();
    poll("the follower to take over", || {
        leader(&s.pg.url).is_some_and(|(h, t)| follow.is_holder(&h) && t == 2)
    });
    eprintln!(
        "failover after kill -9: {} ms (lease 2 s)",
        killed.elapsed().as_millis()
    );
    // The new leader goes on with the same incident, without alerting again.
    more_checks(&s.pg.url, "consecutive_failures", 4);
    assert_eq!(status(&s.pg.url)["monitors"][0]["incident"]["id"], incident);
    assert_eq!(
        s.alerts().len(),
        1,
        "no second down alert: {:?}",
        s.alerts()
    );
    assert!(follow.log().contains("leading (fencing token 2)"));
    s.resolve_once();
}

#[test]
fn monitor_ha_a_leader_paused_past_its_lease_steps_down_when_resumed() {
    let Some(s) = setup() else { return };
    let a = s.start("a");
    let b = s.start("b");
    let (lead, follow) = s.leader_of(&a, &b);
    poll("the down alert", || s.events("trigger") == 1);
    poll("the delivery recorded", || {
        status(&s.pg.url)["outbox"]["pending"] == 0
    });

    lead.signal("-STOP");
    poll("the follower to take over", || {
        leader(&s.pg.url).is_some_and(|(h, t)| follow.is_holder(&h) && t == 2)
    });
    more_checks(&s.pg.url, "consecutive_failures", 2);
    lead.signal("-CONT");
    poll("the old leader to step down", || {
        lead.log().contains("stepped down (fencing token 1)")
    });
    let (holder, token) = leader(&s.pg.url).unwrap();
    assert!(follow.is_holder(&holder), "the new leader keeps the lease");
    assert_eq!(token, 2);
    assert_eq!(s.alerts().len(), 1, "nothing doubled: {:?}", s.alerts());
    s.resolve_once();
    assert!(
        !lead.log().contains("leading (fencing token 3)"),
        "{}",
        lead.log()
    );
}

#[test]
fn monitor_unreachable_postgres_is_reported_at_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        "[[monitor]]\nname = \"api\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let url = format!("postgres://opskit@{closed}/x");
    for args in [
        vec!["monitor", "status", "--database", &url],
        vec![
            "monitor",
            "run",
            "--database",
            &url,
            "--config",
            config.to_str().unwrap(),
        ],
    ] {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("connection refused to {closed}")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn monitor_run_refuses_a_lease_outside_1s_to_1h() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.toml");
    std::fs::write(
        &config,
        "[[monitor]]\nname = \"api\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    for lease in ["500ms", "2h", "soon"] {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
            .args(["monitor", "run", "--lease", lease, "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--lease {lease}: {err}");
        assert!(err.contains("lease"), "--lease {lease}: {err}");
    }
}
