//! `GET /status` and the monitor badges (issue 14): the exact Content-Security-Policy, public
//! and private access, the page without the monitor, badge content types and caching, and the
//! batched data the page is drawn from (SQLite and PostgreSQL).

use std::time::{Duration, Instant};

use base64::Engine as _;
use opskit_monitor::overview::{self, OverviewQuery};
use opskit_server::config::{MonitorSettings, StatusPageAccess};
use opskit_server::{Application, ServerConfig};
use reqwest::{Client, Method};
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use crate::support::{ADMIN_PASSWORD, Backend, Options, TestApp, problem};

/// A server running the monitor over `toml` (written to a temp file).
struct Running {
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    async fn start(access: StatusPageAccess, toml: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("monitor.toml");
        std::fs::write(&conf, toml).unwrap();
        let d = ServerConfig::default();
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}", dir.path().join("s.db").display()),
            rate_limit_per_minute: 100_000,
            admin_password: Some(SecretString::from(ADMIN_PASSWORD)),
            monitor: MonitorSettings {
                config_path: Some(conf),
                ..MonitorSettings::default()
            },
            status_page: access,
            ..d
        };
        let app = Application::build(config).await.expect("build app");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Running {
            base,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
            _stop: tx,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    /// Polls `/status` (as admin) until the page holds every one of `needles` (60 s).
    async fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self
                .get("/status")
                .basic_auth("admin", Some(ADMIN_PASSWORD))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if needles.iter().all(|n| body.contains(n)) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "never showed {needles:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A TCP listener that accepts every connection (an "up" service), and a closed port.
async fn fixtures() -> (String, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    (up, port)
}

fn monitors_toml(up: &str, closed: u16) -> String {
    format!(
        "[[monitor]]\nname = \"<script>alert(1)</script>\"\ngroup = \"Edge & <b>core</b>\"\nkind = \"tcp\"\ntarget = \"{up}\"\ninterval = \"1s\"\n\n\
         [[monitor]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{closed}\"\ninterval = \"1s\"\n"
    )
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn the_csp_is_exact_and_allows_only_the_pages_own_stylesheet() {
    let (up, closed) = fixtures().await;
    let s = Running::start(StatusPageAccess::Public, &monitors_toml(&up, closed)).await;
    let body = s.wait_for(&[">Up<", ">Down<"]).await;
    let r = s.get("/status").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    // the hash of the <style> element as served, computed here independently
    let style = body
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(css, _)| css)
        .expect("a <style> element");
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
    assert_eq!(
        header(&r, "content-security-policy"),
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    );
    // the API's other security headers too
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "x-frame-options"), "DENY");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert_eq!(header(&r, "cache-control"), "public, max-age=15");
    // no script, no other resource, the hostile name and group are text
    assert!(!body.contains("<script"), "{body}");
    assert!(!body.contains("<b>"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(
        body.contains("Edge &amp; &lt;b&gt;core&lt;/b&gt;"),
        "{body}"
    );
    assert!(!body.contains("src="), "{body}");
    assert!(!body.contains("<link"), "{body}");
    // the API elsewhere keeps its own CSP
    let health = s.get("/health").send().await.unwrap();
    assert_eq!(
        header(&health, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn a_private_status_page_asks_a_browser_to_log_in_and_any_role_gets_in() {
    let (up, closed) = fixtures().await;
    let s = Running::start(StatusPageAccess::Private, &monitors_toml(&up, closed)).await;
    let r = s.get("/status").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "www-authenticate"),
        "Basic realm=\"opskit status\", charset=\"UTF-8\""
    );
    assert!(header(&r, "content-type").starts_with("text/html"));
    let text = r.text().await.unwrap();
    assert!(text.contains("Log in"), "{text}");
    assert!(
        !text.contains("db"),
        "nothing of the monitors before login: {text}"
    );
    // a wrong password is asked again, not shown a JSON error without a prompt
    let r = s
        .get("/status")
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").starts_with("Basic realm=\"opskit status\""));
    // a viewer is enough, with a password (Basic) or an API key
    let db = opskit_server::users::open(&format!(
        "sqlite://{}",
        s._dir.path().join("s.db").display()
    ))
    .await
    .unwrap();
    opskit_server::users::add_user(
        &db,
        "watcher",
        SecretString::from("watcher-password-1"),
        "viewer".parse().unwrap(),
    )
    .await
    .unwrap();
    let r = s
        .get("/status")
        .basic_auth("watcher", Some("watcher-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "no-store");
    // badges follow the same rule
    let r = s.get("/api/v1/monitors/db/badge.svg").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").starts_with("Basic realm=\"opskit status\""));
    let r = s
        .get("/api/v1/monitors/db/badge.svg")
        .basic_auth("watcher", Some("watcher-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "cache-control").starts_with("private, max-age="));
}

/// A badge is found by the id the monitors API gives a stored monitor (its UUID), as the other
/// `/api/v1/monitors/{id}` routes are, not only by name.
#[tokio::test]
async fn a_badge_is_found_by_a_stored_monitors_id() {
    let (up, closed) = fixtures().await;
    let s = Running::start(StatusPageAccess::Public, &monitors_toml(&up, closed)).await;
    let r = s
        .client
        .post(format!("{}/api/v1/monitors", s.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&serde_json::json!({
            "name": "stored-db",
            "kind": "tcp",
            "target": format!("127.0.0.1:{closed}"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["id"].as_str().expect("an id").to_string();
    for path in [id.as_str(), "stored-db"] {
        let r = s
            .get(&format!("/api/v1/monitors/{path}/badge.svg"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "badge by {path}");
        let svg = r.text().await.unwrap();
        assert!(svg.contains("aria-label=\"stored-db: "), "{svg}");
    }
}

#[tokio::test]
async fn badges_are_svg_images_with_a_max_age() {
    let (up, closed) = fixtures().await;
    let s = Running::start(StatusPageAccess::Public, &monitors_toml(&up, closed)).await;
    s.wait_for(&[">Up<", ">Down<"]).await;

    let r = s.get("/api/v1/monitors/db/badge.svg").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/svg+xml; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "public, max-age=60");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    let svg = r.text().await.unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.contains("aria-label=\"db: down\""), "{svg}");

    let name = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let r = s
        .get(&format!(
            "/api/v1/monitors/{name}/badge.svg?type=uptime&window=7d"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=300");
    let svg = r.text().await.unwrap();
    assert!(svg.contains("aria-label=\"uptime 7d: 100%\""), "{svg}");

    let r = s
        .get(&format!("/api/v1/monitors/{name}/badge.svg"))
        .send()
        .await
        .unwrap();
    let svg = r.text().await.unwrap();
    assert!(!svg.contains("<script>"), "{svg}");
    assert!(
        svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;: up"),
        "{svg}"
    );

    let r = s
        .get("/api/v1/monitors/db/badge.svg?type=uptime&window=1y")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert!(
        p["detail"].as_str().unwrap().contains("24h, 7d or 30d"),
        "{p}"
    );
    let r = s
        .get("/api/v1/monitors/nope/badge.svg")
        .send()
        .await
        .unwrap();
    let p = problem(r, 404).await;
    assert!(p["detail"].as_str().unwrap().contains("nope"), "{p}");
}

#[tokio::test]
async fn without_the_monitor_the_page_says_so() {
    let app = TestApp::start(Backend::Sqlite, Options::default()).await;
    let r = app.admin_req(Method::GET, "/status").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(header(&r, "content-type").starts_with("text/html"));
    assert!(header(&r, "content-security-policy").contains("style-src 'sha256-"));
    let text = r.text().await.unwrap();
    assert!(text.contains("does not run the monitor"), "{text}");
    assert!(text.contains("--monitor-config"), "{text}");
    let r = app
        .admin_req(Method::GET, "/api/v1/monitors/x/badge.svg")
        .send()
        .await
        .unwrap();
    let p = problem(r, 404).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("does not run the monitor"),
        "{p}"
    );
}

/// The page's data comes from a fixed number of queries; here: that they return the right
/// numbers for several monitors at once.
async fn overview_reads_every_monitor_at_once(url: &str) {
    let db = opskit_monitor::store::Db::open(url).await.unwrap();
    let pool = db.pool();
    let day = 86_400_000i64;
    let now = 1_764_510_000_000i64; // 2025-11-30 13:40 UTC
    let today = now - now.rem_euclid(day);
    let hour_start = now - now.rem_euclid(3_600_000);
    for (m, status) in [("a", "up"), ("b", "down"), ("c", "up")] {
        sqlx::query("INSERT INTO monitor_state (monitor, status, consecutive_failures, consecutive_successes, last_check_ms, last_reason, last_response_time_ms) VALUES ($1, $2, 0, 0, $3, NULL, 12.5)")
            .bind(m).bind(status).bind(now - 1000).execute(pool).await.unwrap();
        // 10 results a minute apart; b went down for the last 3
        for i in 0..10i64 {
            let st = if m == "b" && i >= 7 { "down" } else { "up" };
            sqlx::query("INSERT INTO results (monitor, at_ms, status, response_time_ms) VALUES ($1, $2, $3, $4)")
                .bind(m).bind(now - (10 - i) * 60_000).bind(st).bind(10.0 + i as f64).execute(pool).await.unwrap();
        }
    }
    // a: 100 % today, 50 % three days ago, 0 % forty days ago (outside 30 days)
    for (bucket, up, down) in [
        (today, 10, 0),
        (today - 3 * day, 5, 5),
        (today - 40 * day, 0, 9),
    ] {
        sqlx::query("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) VALUES ('a', 'day', $1, $2, $3, 0, 100.0)")
            .bind(bucket).bind(up).bind(down).execute(pool).await.unwrap();
    }
    sqlx::query("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) VALUES ('a', 'hour', $1, 3, 1, 0, 0.0)")
        .bind(hour_start).execute(pool).await.unwrap();
    // b: an open incident whose trigger alert carries the failed condition; c: a resolved one
    sqlx::query("INSERT INTO incidents (id, monitor, started_ms, resolved_ms, reason) VALUES ('i-b', 'b', $1, NULL, 'refused')")
        .bind(now - 180_000).execute(pool).await.unwrap();
    sqlx::query("INSERT INTO incidents (id, monitor, started_ms, resolved_ms, reason) VALUES ('i-c', 'c', $1, $2, 'slow')")
        .bind(now - 2 * day).bind(now - 2 * day + 60_000).execute(pool).await.unwrap();
    sqlx::query("INSERT INTO incidents (id, monitor, started_ms, resolved_ms, reason) VALUES ('i-old', 'c', $1, $2, 'old')")
        .bind(now - 20 * day).bind(now - 20 * day + 60_000).execute(pool).await.unwrap();
    let payload =
        serde_json::json!({"failed_condition": {"condition": ".connected == true", "got": false}});
    sqlx::query("INSERT INTO outbox (id, seq, monitor, destination, incident_id, event, payload, created_ms, next_attempt_ms) VALUES ('w1', 1, 'b', 'ops', 'i-b', 'trigger', $1, $2, $2)")
        .bind(payload.to_string()).bind(now).execute(pool).await.unwrap();

    let o = overview::overview(
        &db,
        OverviewQuery {
            now_ms: now,
            recent: 4,
            resolved_since_ms: now - 7 * day,
            max_resolved: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(o.monitors.len(), 3);
    let a = &o.monitors["a"];
    assert_eq!(a.uptime_24h, Some(75.0));
    assert_eq!(a.uptime_7d, Some(75.0));
    assert_eq!(a.uptime_30d, Some(75.0));
    assert_eq!(
        a.days.len(),
        2,
        "the day 40 days ago is not among the 30: {:?}",
        a.days
    );
    assert_eq!(
        a.since_ms,
        Some(now - 10 * 60_000),
        "up for all its kept results"
    );
    assert_eq!(a.recent.len(), 4, "the last 4 results only");
    assert_eq!(a.recent.last().unwrap().at_ms, now - 60_000, "newest last");
    let b = &o.monitors["b"];
    assert_eq!(b.status, "down");
    assert_eq!(
        b.since_ms,
        Some(now - 3 * 60_000),
        "down since its first failed result"
    );
    assert_eq!(b.uptime_24h, None);
    assert_eq!(o.open.len(), 1);
    assert_eq!(o.open[0].monitor, "b");
    assert_eq!(o.open[0].condition.as_deref(), Some(".connected == true"));
    assert_eq!(o.open[0].got, Some(serde_json::json!(false)));
    assert_eq!(
        o.resolved.len(),
        1,
        "only the one resolved within 7 days: {:?}",
        o.resolved
    );
    assert_eq!(o.resolved[0].id, "i-c");
    assert_eq!(o.resolved[0].condition, None);
    assert_eq!(o.resolved[0].reason.as_deref(), Some("slow"));
    db.close().await;
}

#[tokio::test]
async fn overview_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    overview_reads_every_monitor_at_once(&format!(
        "sqlite://{}",
        dir.path().join("m.db").display()
    ))
    .await;
}

#[tokio::test]
async fn overview_on_postgres() {
    let Some(url) = crate::support::pg_url() else {
        return;
    };
    // a database of its own
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let name = format!("opskit_status_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut fresh = url::Url::parse(&url).unwrap();
    fresh.set_path(&format!("/{name}"));
    overview_reads_every_monitor_at_once(fresh.as_str()).await;
}
