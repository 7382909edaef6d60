//! `opskit serve --monitor-config`: the monitor engine inside the server. One server per SQLite
//! database (a second is refused, the admin commands keep working); `POST /heartbeat/{token}`
//! and `/metrics` on serve's listener; and two replicas on one PostgreSQL database, the leader
//! killed with -9 in the middle of an incident: one "down" and one "resolved" alert, both
//! replicas serving the API, the failover time printed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection as _, Row as _};

use crate::support::{
    self, ADMIN_PASSWORD, Serve, events, opskit, poll, runtime, switch_endpoint,
    switch_monitor_config, webhook_receiver,
};

/// One HTTP request: (status, content type, body). `admin` sends the admin's Basic credential.
fn http(method: &str, url: &str, admin: bool, body: Option<Value>) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut req = c.request(method.parse().unwrap(), url);
        if admin {
            req = req.basic_auth("admin", Some(ADMIN_PASSWORD));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, ct, r.text().await.unwrap())
    })
}

/// GET with another user's Basic credential: the status.
fn rt_get_as(url: &str, user: &str, password: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(url)
            .basic_auth(user, Some(password))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn heartbeat_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("monitor.toml");
    std::fs::write(
        &path,
        "[[monitor]]\nname = \"nightly-backup\"\nkind = \"heartbeat\"\ntoken = \"backup-token-123\"\ngrace = \"1h\"\ninterval = \"1s\"\n",
    )
    .unwrap();
    path
}

#[test]
fn serve_monitor_a_second_serve_on_one_sqlite_file_is_refused_and_admin_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inv.db");
    let db = format!("sqlite://{}", file.display());
    let config = heartbeat_file(dir.path());
    let first = Serve::start(&db, &["--monitor-config", config.to_str().unwrap()]);

    // A second server on the same file, with or without the monitor: refused, exit 1, the
    // message names the file, the first one's pid, and PostgreSQL for replicas.
    for extra in [&["--monitor"][..], &[][..]] {
        let out = opskit()
            .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
            .args(extra)
            .env("OPSKIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
        assert!(err.contains("PostgreSQL"), "{err}");
    }
    // The same file through another spelling of its path is the same database.
    let other_spelling = format!("sqlite:{}/./inv.db", dir.path().display());
    let out = opskit()
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database",
            &other_spelling,
        ])
        .env("OPSKIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The admin commands keep working while the server runs.
    let out = opskit()
        .args([
            "user",
            "add",
            "ops",
            "--role",
            "operator",
            "--database",
            &db,
        ])
        .env("OPSKIT_USER_PASSWORD", "ops-password-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = opskit()
        .args(["db", "init", "--database", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and the server sees their writes.
    let r = rt_get_as(&first.url("/api/v1/servers"), "ops", "ops-password-1");
    assert_eq!(r, 200);

    // kill -9 leaves no lock behind: the next server starts.
    first.signal("-KILL");
    drop(first);
    let again = Serve::start(&db, &["--monitor-config", config.to_str().unwrap()]);
    let (status, log) = again.terminate();
    assert!(status.success(), "{status}: {log}");
}

#[test]
fn serve_monitor_takes_heartbeats_and_serves_the_monitor_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("inv.db").display());
    let config = heartbeat_file(dir.path());
    let s = Serve::start(&db, &["--monitor-config", config.to_str().unwrap()]);

    // A ping with the token, and no credential, counts; an unknown token is a 404 problem.
    let (status, _, body) = http("POST", &s.url("/heartbeat/backup-token-123"), false, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ok"], true);
    let (status, ct, body) = http("POST", &s.url("/heartbeat/not-a-token"), false, None);
    assert_eq!(status, 404);
    assert_eq!(ct, "application/problem+json");
    assert!(
        body.contains("no heartbeat monitor has this token"),
        "{body}"
    );

    // The ping is stored and the monitor is up, as serve's /metrics says.
    let metrics = || http("GET", &s.url("/metrics"), true, None).2;
    poll("the heartbeat monitor up in /metrics", || {
        metrics().contains(
            "opskit_monitor_up{monitor=\"nightly-backup\",group=\"\",kind=\"heartbeat\"} 1",
        )
    });
    let m = metrics();
    assert!(m.contains("opskit_monitor_leader 1"), "{m}");
    assert!(m.contains("opskit_http_requests_total"), "{m}");

    // The route is in the OpenAPI document, without a credential.
    let doc: Value =
        serde_json::from_str(&http("GET", &s.url("/openapi.json"), false, None).2).unwrap();
    let op = &doc["paths"]["/heartbeat/{token}"]["post"];
    assert!(op.is_object(), "{}", doc["paths"]);
    assert_eq!(op["security"], serde_json::json!([{}]));
    assert!(
        s.log().contains("monitor: leading (fencing token 1)"),
        "{}",
        s.log()
    );
    let (status, log) = s.terminate();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("stopped"), "{log}");

    // Without --monitor: no engine, no monitor series, and the heartbeat route says why.
    let plain = Serve::start(&db, &[]);
    let (status, _, body) = http(
        "POST",
        &plain.url("/heartbeat/backup-token-123"),
        false,
        None,
    );
    assert_eq!(status, 404);
    assert!(body.contains("--monitor"), "{body}");
    let m = http("GET", &plain.url("/metrics"), true, None).2;
    assert!(!m.contains("opskit_monitor_"), "{m}");
}

#[test]
fn serve_monitor_refuses_a_bad_monitor_file_and_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("inv.db").display());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[monitor]]\nname = \"x\"\n").unwrap();
    let out = opskit()
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .args(["--monitor-config", bad.to_str().unwrap()])
        .env("OPSKIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:1"), "{err}");
    let out = opskit()
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .args(["--monitor", "--monitor-lease", "500ms"])
        .env("OPSKIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--monitor-lease"), "{err}");
}

// ---- two replicas on one PostgreSQL ----

/// The replicas' database, with the lease and the results read straight from it.
struct PgDb {
    rt: tokio::runtime::Runtime,
    db: support::PgDb,
    url: String,
}

impl PgDb {
    fn new() -> Option<PgDb> {
        let rt = runtime();
        let db = rt.block_on(support::PgDb::create("srvha"))?;
        let url = db.url.clone();
        Some(PgDb { rt, db, url })
    }

    /// The lease row: (holder, fencing token, live).
    fn lease(&self) -> Option<(String, i64, bool)> {
        self.rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&self.url).await.ok()?;
            let row = sqlx::query(
                "SELECT holder, token, expires_ms > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) \
                 FROM leader_lease WHERE name = 'monitor'",
            )
            .fetch_optional(&mut c)
            .await
            .ok()??;
            Some((row.get(0), row.get(1), row.get(2)))
        })
    }

    /// Results recorded for `monitor`, and the newest one's time.
    fn results(&self, monitor: &str) -> (i64, i64) {
        self.rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let row = sqlx::query(
                "SELECT COUNT(*), COALESCE(MAX(at_ms), 0) FROM results WHERE monitor = $1",
            )
            .bind(monitor)
            .fetch_one(&mut c)
            .await
            .unwrap();
            (row.get(0), row.get(1))
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        self.rt.block_on(self.db.remove());
    }
}

/// Both replicas answer the servers API (one of them creates a server, the other reads it).
fn both_serve_the_api(a: &Serve, b: &Serve, hostname: &str) {
    let (status, _, body) = http(
        "POST",
        &a.url("/api/v1/servers"),
        true,
        Some(serde_json::json!({"hostname": hostname, "ip": "10.0.0.7", "env": "prod"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = http(
        "GET",
        &b.url(&format!("/api/v1/servers/{hostname}")),
        true,
        None,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn serve_monitor_ha_two_replicas_kill_9_of_the_leader_mid_incident() {
    let Some(pg) = PgDb::new() else { return };
    let rt = runtime();
    let code = Arc::new(AtomicU16::new(503));
    let svc = switch_endpoint(&rt, code.clone());
    let (hook, alerts) = webhook_receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("monitor.toml");
    std::fs::write(&config, switch_monitor_config(hook, svc)).unwrap();
    let args = [
        "--monitor-config",
        config.to_str().unwrap(),
        "--monitor-lease",
        "2s",
    ];
    let a = Serve::start(&pg.url, &args);
    let b = Serve::start(&pg.url, &args);
    poll("a leader", || pg.lease().is_some_and(|l| l.2));
    let (holder, token, _) = pg.lease().unwrap();
    assert_eq!(token, 1);
    let (lead, follow) = if a.is_holder(&holder) {
        (a, b)
    } else {
        assert!(b.is_holder(&holder), "{holder} is neither replica");
        (b, a)
    };
    poll("the follower to say so", || {
        follow.log().contains("monitor: following")
    });
    both_serve_the_api(&lead, &follow, "web-1");
    both_serve_the_api(&follow, &lead, "web-2");

    // The incident: one down alert.
    poll("the down alert", || events(&alerts, "trigger") == 1);
    let incident = alerts.lock().unwrap()[0].2.clone();

    // kill -9 of the leader in the middle of it.
    let (before, _) = pg.results("api");
    lead.signal("-KILL");
    let killed = Instant::now();
    poll("the follower to take the lease", || {
        pg.lease()
            .is_some_and(|(h, t, live)| follow.is_holder(&h) && t == 2 && live)
    });
    let took_over = killed.elapsed();
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - took_over.as_millis() as i64;
    poll("a check by the new leader", || {
        let (n, last) = pg.results("api");
        n > before && last > killed_ms
    });
    let first_check = killed.elapsed();
    eprintln!(
        "serve failover after kill -9 of the leader: lease taken in {} ms, first check by the new leader after {} ms (lease 2 s, both replicas on one host)",
        took_over.as_millis(),
        first_check.as_millis()
    );
    assert!(follow.log().contains("monitor: leading (fencing token 2)"));
    // The survivor goes on with the same incident without alerting again, and serves the API.
    let (n, _) = pg.results("api");
    poll("more failures recorded", || pg.results("api").0 >= n + 3);
    assert_eq!(
        events(&alerts, "trigger"),
        1,
        "{:?}",
        alerts.lock().unwrap()
    );
    let (status, _, body) = http("GET", &follow.url("/api/v1/servers/web-1"), true, None);
    assert_eq!(status, 200, "{body}");

    // Up again: exactly one resolved alert, for the same incident.
    code.store(200, Ordering::SeqCst);
    poll("the resolved alert", || events(&alerts, "resolve") == 1);
    let (n, _) = pg.results("api");
    poll("more successes recorded", || pg.results("api").0 >= n + 4);
    let got = alerts.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
        ["trigger", "resolve"],
        "one down and one resolved alert: {got:?}"
    );
    assert_ne!(got[0].0, got[1].0, "two alerts, two webhook ids");
    assert_eq!(got[1].2, incident, "the resolve closes the same incident");
    drop(lead);
    let (status, log) = follow.terminate();
    assert!(status.success(), "{status}: {log}");
}
