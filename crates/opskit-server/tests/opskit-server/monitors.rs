//! The monitors API (issue 14) on SQLite and PostgreSQL: CRUD with ETag/If-Match and merge
//! patch, roles, read-only monitors of monitor.toml, secrets never echoed, and results, uptime
//! and incidents after the engine ran real checks against a loopback fixture.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use opskit_monitor::definitions::ApiMonitors;
use opskit_monitor::service::{Service, ServiceOptions};
use opskit_server::config::MonitorSettings;
use opskit_server::{AppState, ServerConfig};
use reqwest::{Client, Method, Response};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{ADMIN_PASSWORD, Backend, Options, TestApp, pg_url, problem};

/// A loopback HTTP service whose answer the test sets, and a webhook that counts alerts.
pub struct Fixture {
    port: u16,
    code: Arc<AtomicU16>,
    alerts: Arc<AtomicUsize>,
}

async fn fixture() -> Fixture {
    use axum::routing::{get, post};
    let code = Arc::new(AtomicU16::new(200));
    let alerts = Arc::new(AtomicUsize::new(0));
    let (c, a) = (code.clone(), alerts.clone());
    let app = axum::Router::new()
        .route(
            "/switch",
            get(move || {
                let c = c.clone();
                async move {
                    axum::http::StatusCode::from_u16(c.load(Ordering::SeqCst))
                        .unwrap_or(axum::http::StatusCode::OK)
                }
            }),
        )
        .route(
            "/hook",
            post(move || {
                let a = a.clone();
                async move {
                    a.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Fixture { port, code, alerts }
}

/// `opskit serve` with the monitor engine: monitor.toml (one http monitor on the fixture, a
/// webhook destination) plus the monitors stored through the API.
pub struct MonApp {
    base: String,
    client: Client,
    admin: String,
    database_url: String,
    svc: Service,
    fx: Fixture,
    file_line: usize,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn fresh_pg_database(base: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
    let name = format!("opskit_mon_api_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(base).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl MonApp {
    async fn start(backend: Backend) -> Option<MonApp> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => fresh_pg_database(&pg_url()?).await,
        };
        let fx = fixture().await;
        let toml = format!(
            r#"[destinations.hook]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"

[[monitor]]
name = "file-api"
group = "core"
kind = "http"
target = "http://127.0.0.1:{port}/switch?key=filesecret"
interval = "300ms"
conditions = [".status == 200"]
alerts = [{{ destination = "hook", failure_threshold = 2, success_threshold = 1 }}]
"#,
            port = fx.port
        );
        let path = dir.path().join("monitor.toml");
        std::fs::write(&path, &toml).unwrap();
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            database_url: database_url.clone(),
            rate_limit_per_minute: 100_000,
            login_rate_limit_per_minute: 10_000,
            admin_password: Some(SecretString::from(ADMIN_PASSWORD)),
            monitor: MonitorSettings {
                enabled: true,
                config_path: Some(path.clone()),
                ..MonitorSettings::default()
            },
            ..ServerConfig::default()
        };
        let db = opskit_server::users::open(&database_url).await.unwrap();
        opskit_server::users::ensure_admin(&db, config.admin_password.clone())
            .await
            .unwrap();
        let mdb = opskit_monitor::store::Db::open(&database_url)
            .await
            .unwrap();
        let svc = Service::start(
            ServiceOptions {
                config_path: Some(path),
                sources: vec![ApiMonitors::new(mdb.clone())],
                refresh: Duration::from_secs(1),
                ..ServiceOptions::new(mdb)
            },
            |_| {},
        )
        .await
        .unwrap();
        let state = AppState::with_monitor(db, config, Some(svc.clone()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = opskit_server::app(state);
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        });
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let file_line = toml.lines().position(|l| l == "[[monitor]]").unwrap() + 1;
        let mut app = MonApp {
            base,
            client,
            admin: String::new(),
            database_url,
            svc,
            fx,
            file_line,
            _dir: dir,
            _stop: tx,
        };
        app.admin = app.login("admin", ADMIN_PASSWORD).await;
        Some(app)
    }

    async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .client
            .post(format!("{}/auth/login", self.base))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {user}");
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    async fn user(&self, name: &str, role: &str) -> String {
        let db = opskit_server::users::open(&self.database_url)
            .await
            .unwrap();
        opskit_server::users::add_user(
            &db,
            name,
            SecretString::from("user-password-1"),
            role.parse().unwrap(),
        )
        .await
        .unwrap();
        self.login(name, "user-password-1").await
    }

    fn req(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.req(&self.admin, method, path)
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn create(&self, body: Value) -> Response {
        self.admin(Method::POST, "/api/v1/monitors")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn patch(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.admin(Method::PATCH, path)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
    }

    /// Polls `f` (a GET's JSON) until `ok` holds; the last value.
    async fn until(&self, what: &str, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let v = self.get(path).await;
            if ok(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.svc.clone().stop().await.unwrap();
    }
}

macro_rules! both {
    ($name:ident) => {
        pub mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = super::MonApp::start(crate::support::Backend::Sqlite)
                    .await
                    .unwrap();
                super::$name(&app).await;
                app.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = super::MonApp::start(crate::support::Backend::Postgres).await
                else {
                    return;
                };
                super::$name(&app).await;
                app.stop().await;
            }
        }
    };
}

fn locs(body: &Value) -> Vec<Value> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect()
}

fn etag(r: &Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_owned()
}

both!(crud_with_if_match_and_secrets_never_echoed);
pub async fn crud_with_if_match_and_secrets_never_echoed(app: &MonApp) {
    let target = format!("http://127.0.0.1:{}/switch", app.fx.port);
    let r = app
        .create(
            json!({"name": "api-one", "group": "edge", "kind": "http", "target": target,
            "interval": "1h", "conditions": [".status == 200"], "alerts": ["hook"],
            "bearer": "s3cret-bearer", "headers": {"X-Api-Key": "s3cret-header"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let tag1 = etag(&r);
    let text = r.text().await.unwrap();
    assert!(!text.contains("s3cret"), "a secret is echoed: {text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/monitors/{id}"));
    assert_eq!(created["origin"], "api");
    assert_eq!(created["read_only"], false);
    assert_eq!(created["kind"], "http");
    assert_eq!(created["interval"], "1h");
    assert_eq!(created["group"], "edge");
    assert_eq!(created["definition"]["bearer"], "<redacted>");
    assert_eq!(created["definition"]["headers"]["X-Api-Key"], "<redacted>");

    // by id and by name; the engine picks it up without a restart
    for key in [id.as_str(), "api-one"] {
        let r = app
            .admin(Method::GET, &format!("/api/v1/monitors/{key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(etag(&r), tag1);
        let text = r.text().await.unwrap();
        assert!(!text.contains("s3cret"), "{text}");
    }
    app.until("the engine runs api-one", &location, |v| {
        v["running"] == true
    })
    .await;
    assert!(
        app.svc
            .config()
            .monitors
            .iter()
            .any(|m| m.name == "api-one")
    );

    // If-Match: a stale or weak tag is a 412 and changes nothing
    for stale in ["\"nope-1\"", &format!("W/{tag1}")] {
        let r = app
            .patch(&location, &json!({"interval": "2h"}))
            .header("if-match", stale)
            .send()
            .await
            .unwrap();
        problem(r, 412).await;
    }
    let r = app
        .patch(&location, &json!({"interval": "2h", "group": null}))
        .header("if-match", &tag1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tag2 = etag(&r);
    assert_ne!(tag1, tag2);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["interval"], "2h");
    assert_eq!(patched["group"], Value::Null);
    // secrets the patch did not touch are kept, and so are those sent back redacted
    let mut back = patched["definition"].clone();
    back["interval"] = json!("3h");
    let r = app
        .patch(&location, &back)
        .header("if-match", &tag2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mdb = opskit_monitor::store::Db::open(&app.database_url)
        .await
        .unwrap();
    let stored = opskit_monitor::definitions::get(&mdb, "api-one")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.definition["bearer"], "s3cret-bearer");
    assert_eq!(stored.definition["headers"]["X-Api-Key"], "s3cret-header");
    assert_eq!(stored.definition["interval"], "3h");
    assert_eq!(stored.version, 3);

    // bad bodies: 422 naming the field, the same rules as monitor.toml; nothing changes
    let r = app
        .patch(&location, &json!({"method": "NOT A METHOD"}))
        .send()
        .await
        .unwrap();
    let body = problem(r, 422).await;
    assert_eq!(locs(&body), [json!(["body", "method"])]);
    let r = app
        .patch(&location, &json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(locs(&problem(r, 422).await), [json!(["body", "name"])]);
    for (body, loc) in [
        (
            json!({"name": "x", "kind": "tcp"}),
            json!(["body", "target"]),
        ),
        (
            json!({"name": "x", "kind": "tcp", "target": "127.0.0.1:1", "body": "b"}),
            json!(["body", "body"]),
        ),
        (
            json!({"name": "x", "kind": "tcp", "target": "127.0.0.1:1", "colour": "blue"}),
            json!(["body", "colour"]),
        ),
        (
            json!({"name": "x", "kind": "tcp", "target": "127.0.0.1:1", "alerts": ["nowhere"]}),
            json!(["body", "alerts"]),
        ),
        (
            json!({"name": "x", "kind": "http", "target": target, "conditions": [".status =="]}),
            json!(["body", "conditions", 0]),
        ),
        (
            json!({"name": "x", "kind": "http", "target": target, "bearer": "env:HOME"}),
            json!(["body", "bearer"]),
        ),
        (
            json!({"name": "x", "kind": "http", "target": target, "headers": {"X": "cmd:id"}}),
            json!(["body", "headers", "X"]),
        ),
        (
            json!({"name": "x", "kind": "ssh", "target": "127.0.0.1", "command": "id"}),
            json!(["body", "kind"]),
        ),
        (
            json!({"kind": "tcp", "target": "127.0.0.1:1"}),
            json!(["body", "name"]),
        ),
    ] {
        let r = app.create(body.clone()).await;
        let p = problem(r, 422).await;
        assert_eq!(locs(&p), [loc], "{body}: {p:#}");
    }
    let r = app
        .create(json!({"name": "hb", "kind": "heartbeat", "token": "short"}))
        .await;
    let p = problem(r, 422).await;
    assert_eq!(locs(&p), [json!(["body", "token"])]);
    assert!(
        p["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("at least 8"),
        "{p:#}"
    );

    // a heartbeat token is one monitor's only
    let r = app
        .create(
            json!({"name": "hb-1", "kind": "heartbeat", "token": "tok-12345678", "interval": "1h"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .create(
            json!({"name": "hb-2", "kind": "heartbeat", "token": "tok-12345678", "interval": "1h"}),
        )
        .await;
    let p = problem(r, 422).await;
    assert_eq!(locs(&p), [json!(["body", "token"])]);
    assert_eq!(p["errors"][0]["msg"], "another monitor uses this token");
    let r = app
        .admin(Method::DELETE, "/api/v1/monitors/hb-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // a name taken by any origin is a 409
    let r = app
        .create(json!({"name": "api-one", "kind": "tcp", "target": "127.0.0.1:1"}))
        .await;
    problem(r, 409).await;
    let r = app
        .create(json!({"name": "file-api", "kind": "tcp", "target": "127.0.0.1:1"}))
        .await;
    let p = problem(r, 409).await;
    assert!(
        p["detail"].as_str().unwrap().contains("monitor.toml line"),
        "{p:#}"
    );

    // DELETE honours If-Match
    let r = app
        .admin(Method::DELETE, &location)
        .header("if-match", &tag1)
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
    let r = app.admin(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = app.admin(Method::GET, &location).send().await.unwrap();
    problem(r, 404).await;
    let r = app.admin(Method::DELETE, &location).send().await.unwrap();
    problem(r, 404).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app
        .svc
        .config()
        .monitors
        .iter()
        .any(|m| m.name == "api-one")
    {
        assert!(tokio::time::Instant::now() < deadline, "api-one still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both!(viewers_read_and_writers_write);
pub async fn viewers_read_and_writers_write(app: &MonApp) {
    let viewer = app.user("vera", "viewer").await;
    let operator = app.user("otto", "operator").await;
    let body = json!({"name": "by-role", "kind": "tcp", "target": "127.0.0.1:1", "interval": "1h"});
    let r = app
        .req(&viewer, Method::POST, "/api/v1/monitors")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    // a viewer's bad body is a 403 too, not a 415
    let r = app
        .req(&viewer, Method::POST, "/api/v1/monitors")
        .body("nonsense")
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    let r = app
        .req(&operator, Method::POST, "/api/v1/monitors")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for path in [
        "/api/v1/monitors",
        "/api/v1/monitors/by-role",
        "/api/v1/incidents",
    ] {
        let r = app.req(&viewer, Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "viewer GET {path}");
    }
    let r = app
        .req(&viewer, Method::PATCH, "/api/v1/monitors/by-role")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"interval": "2h"}"#)
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    let r = app
        .req(&viewer, Method::DELETE, "/api/v1/monitors/by-role")
        .send()
        .await
        .unwrap();
    problem(r, 403).await;
    let r = app
        .client
        .get(format!("{}/api/v1/monitors", app.base))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .req(&operator, Method::DELETE, "/api/v1/monitors/by-role")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

both!(file_monitors_are_read_only);
pub async fn file_monitors_are_read_only(app: &MonApp) {
    let m = app.get("/api/v1/monitors/file-api").await;
    assert_eq!(m["origin"], "file");
    assert_eq!(m["read_only"], true);
    assert_eq!(m["id"], "file-api");
    assert_eq!(m["group"], "core");
    assert_eq!(m["definition"], Value::Null);
    // the target never shows a secret (query values hidden)
    assert!(!m.to_string().contains("filesecret"), "{m:#}");
    let line = format!("monitor.toml line {}", app.file_line);
    assert!(m["defined_in"].as_str().unwrap().ends_with(&line), "{m:#}");
    let r = app
        .patch("/api/v1/monitors/file-api", &json!({"interval": "1h"}))
        .send()
        .await
        .unwrap();
    let p = problem(r, 409).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains(&line) && detail.contains("edit the file"),
        "{detail}"
    );
    let r = app
        .admin(Method::DELETE, "/api/v1/monitors/file-api")
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    let p = problem(r, 409).await;
    assert!(p["detail"].as_str().unwrap().contains(&line), "{p:#}");
    // still there and running
    assert!(
        app.svc
            .config()
            .monitors
            .iter()
            .any(|m| m.name == "file-api")
    );
    let r = app
        .admin(Method::GET, "/api/v1/monitors/nope")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
}

both!(results_uptime_and_incidents_from_real_checks);
pub async fn results_uptime_and_incidents_from_real_checks(app: &MonApp) {
    let target = format!("http://127.0.0.1:{}/switch", app.fx.port);
    let r = app
        .create(
            json!({"name": "api-two", "group": "edge", "kind": "http", "target": target,
            "interval": "300ms", "conditions": [".status == 200"]}),
        )
        .await;
    assert_eq!(r.status(), 201);

    // both monitors up: the list shows state, since and last check; filters apply
    let up = |v: &Value| {
        let data = v["data"].as_array().unwrap();
        data.len() == 2 && data.iter().all(|m| m["state"] == "up")
    };
    let list = app.until("both up", "/api/v1/monitors", up).await;
    assert_eq!(list["total"], 2);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-two", "file-api"]);
    for m in list["data"].as_array().unwrap() {
        assert!(
            m["since"].is_string() && m["last_check"].is_string(),
            "{m:#}"
        );
    }
    let edge = app.get("/api/v1/monitors?group=edge").await;
    assert_eq!(edge["total"], 1);
    assert_eq!(edge["data"][0]["name"], "api-two");
    let down = app.get("/api/v1/monitors?state=down").await;
    assert_eq!(down["total"], 0);
    let r = app
        .admin(Method::GET, "/api/v1/monitors?page=1&per_page=1")
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"next\"") && link.contains("page=2"),
        "{link}"
    );
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["total_pages"], 2);
    let r = app
        .admin(Method::GET, "/api/v1/monitors?state=sideways&per_page=0")
        .send()
        .await
        .unwrap();
    let p = problem(r, 422).await;
    assert_eq!(locs(&p).len(), 2, "{p:#}");

    // the fixture fails: the file monitor opens an incident and alerts the webhook
    app.fx.code.store(503, Ordering::SeqCst);
    let open = app
        .until(
            "an open incident",
            "/api/v1/incidents?state=open&monitor=file-api",
            |v| {
                v["data"].as_array().is_some_and(|d| {
                    d.iter()
                        .any(|i| !i["alerts"].as_array().unwrap().is_empty())
                })
            },
        )
        .await;
    let inc = &open["data"][0];
    assert_eq!(inc["state"], "open");
    assert_eq!(inc["monitor"], "file-api");
    assert_eq!(inc["resolved_at"], Value::Null);
    assert_eq!(inc["alerts"][0]["destination"], "hook");
    assert_eq!(inc["alerts"][0]["event"], "trigger");
    assert!(
        inc["failed_condition"]
            .to_string()
            .contains(".status == 200"),
        "{inc:#}"
    );
    let down = app
        .until("file-api down", "/api/v1/monitors?state=down", |v| {
            v["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|m| m["name"] == "file-api"))
        })
        .await;
    assert!(down["data"][0]["last_reason"].is_string(), "{down:#}");

    // back up: the incident resolves, and a resolve alert is sent
    app.fx.code.store(200, Ordering::SeqCst);
    let past = app
        .until(
            "the incident resolved",
            // api-two checks the same fixture and may have an incident of its own, newer
            "/api/v1/incidents?state=resolved&monitor=file-api",
            |v| v["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    let resolved = &past["data"][0];
    assert_eq!(resolved["id"], inc["id"]);
    assert_eq!(resolved["state"], "resolved");
    assert!(resolved["resolved_at"].is_string());
    let all = app
        .until(
            "the resolve alert",
            "/api/v1/incidents?monitor=file-api",
            |v| {
                v["data"][0]["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["event"] == "resolve"))
            },
        )
        .await;
    assert!(
        all["data"][0]["alerts"][0]["delivered_at"].is_string(),
        "{all:#}"
    );
    assert!(app.fx.alerts.load(Ordering::SeqCst) >= 1);

    // results: newest first, a page at a time through Link
    let r = app
        .admin(Method::GET, "/api/v1/monitors/file-api/results?per_page=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let (a, b) = (
        first["data"][0]["at"].as_str().unwrap(),
        first["data"][1]["at"].as_str().unwrap(),
    );
    assert!(a > b, "newest first: {first:#}");
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    assert!(next.contains("before="), "{link}");
    let second = app.get(&next).await;
    assert!(second["data"][0]["at"].as_str().unwrap() < b);
    let statuses: Vec<String> = {
        let mut all = Vec::new();
        let mut path = "/api/v1/monitors/file-api/results?per_page=1000".to_string();
        loop {
            let page = app.get(&path).await;
            all.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["status"].as_str().unwrap().to_owned()),
            );
            match page["next_before"].as_i64() {
                Some(b) => path = format!("/api/v1/monitors/file-api/results?before={b}"),
                None => break,
            }
        }
        all
    };
    assert!(
        statuses.iter().any(|s| s == "down") && statuses[0] == "up",
        "{statuses:?}"
    );

    // uptime: below 100 % today, with today's bucket
    let u = app.get("/api/v1/monitors/file-api/uptime").await;
    let u24 = u["uptime_24h"].as_f64().unwrap();
    assert!(u24 > 0.0 && u24 < 100.0, "{u:#}");
    let days = u["days"].as_array().unwrap();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(days.last().unwrap()["day"], today.as_str());
    assert!(days.last().unwrap()["down"].as_i64().unwrap() >= 2);
    let u2 = app.get("/api/v1/monitors/api-two/uptime").await;
    assert!(u2["uptime_24h"].as_f64().is_some(), "{u2:#}");
    let r = app
        .admin(Method::GET, "/api/v1/monitors/nope/uptime")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_monitor_every_route_says_how_to_start_it() {
    let app = TestApp::start(Backend::Sqlite, Options::default()).await;
    for path in [
        "/api/v1/monitors",
        "/api/v1/monitors/x",
        "/api/v1/monitors/x/results",
        "/api/v1/monitors/x/uptime",
        "/api/v1/incidents",
    ] {
        let r = app.admin_req(Method::GET, path).send().await.unwrap();
        let p = problem(r, 404).await;
        assert_eq!(
            p["detail"],
            "the monitor is not running in this server: start opskit serve with --monitor-config FILE or --monitor",
            "{path}"
        );
    }
    let r = app
        .admin_req(Method::POST, "/api/v1/monitors")
        .json(&json!({"name": "a", "kind": "tcp", "target": "127.0.0.1:1"}))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
}

/// Does a page of incidents hold one of `name`?
fn has_incident_of(page: &Value, name: &str) -> bool {
    page["data"]
        .as_array()
        .is_some_and(|d| d.iter().any(|i| i["monitor"] == name))
}

both!(an_open_incident_closes_when_its_monitor_goes);
pub async fn an_open_incident_closes_when_its_monitor_goes(app: &MonApp) {
    let target = format!("http://127.0.0.1:{}/switch", app.fx.port);
    let r = app
        .create(json!({"name": "doomed", "kind": "http", "target": target,
            "interval": "300ms", "conditions": [".status == 200"]}))
        .await;
    assert_eq!(r.status(), 201);
    app.fx.code.store(503, Ordering::SeqCst);
    app.until("doomed's incident", "/api/v1/incidents?state=open", |v| {
        has_incident_of(v, "doomed")
    })
    .await;
    app.until("file-api's alert", "/api/v1/incidents?state=open", |v| {
        v["data"].as_array().is_some_and(|d| {
            d.iter()
                .any(|i| i["monitor"] == "file-api" && !i["alerts"].as_array().unwrap().is_empty())
        })
    })
    .await;

    // deleted through the API: its incident is closed by the same request
    let r = app
        .admin(Method::DELETE, "/api/v1/monitors/doomed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let open = app.get("/api/v1/incidents?state=open").await;
    assert!(!has_incident_of(&open, "doomed"), "{open:#}");
    let past = app.get("/api/v1/incidents?state=resolved").await;
    let closed = past["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["monitor"] == "doomed")
        .unwrap_or_else(|| panic!("no resolved incident of doomed: {past:#}"));
    assert_eq!(closed["state"], "resolved");
    assert!(closed["resolved_at"].is_string(), "{closed:#}");
    assert_eq!(closed["resolved_reason"], "monitor removed");

    // removed from monitor.toml: the leader closes its incident when it applies the file,
    // without a "resolved" alert (nothing saw the service recover)
    let path = app._dir.path().join("monitor.toml");
    std::fs::write(
        &path,
        format!(
            "[destinations.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n",
            app.fx.port
        ),
    )
    .unwrap();
    app.until(
        "file-api's incident closed",
        "/api/v1/incidents?state=open",
        |v| !has_incident_of(v, "file-api"),
    )
    .await;
    let past = app.get("/api/v1/incidents?state=resolved").await;
    let closed = past["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["monitor"] == "file-api")
        .unwrap_or_else(|| panic!("no resolved incident of file-api: {past:#}"));
    assert_eq!(closed["resolved_reason"], "monitor removed");
    let events: Vec<&Value> = closed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["event"])
        .collect();
    assert!(events.iter().all(|e| *e != "resolve"), "{closed:#}");
    assert!(events.iter().any(|e| *e == "trigger"), "{closed:#}");
}

both!(a_heartbeat_token_is_shown_to_writers_only);
pub async fn a_heartbeat_token_is_shown_to_writers_only(app: &MonApp) {
    let r = app
        .create(
            json!({"name": "nightly", "kind": "heartbeat", "token": "nightly-tok-123456",
            "interval": "1h"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["definition"]["token"], "nightly-tok-123456");
    let viewer = app.user("vic", "viewer").await;
    let operator = app.user("otto", "operator").await;
    let token_seen = |who: &str, v: &Value| {
        let m = if v["data"].is_array() {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == "nightly")
                .unwrap_or_else(|| panic!("{who}: nightly not listed: {v:#}"))
                .clone()
        } else {
            v.clone()
        };
        m["definition"]["token"].as_str().unwrap().to_owned()
    };
    for path in ["/api/v1/monitors/nightly", "/api/v1/monitors"] {
        let r = app.req(&viewer, Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "viewer GET {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(token_seen("viewer", &v), "<redacted>", "viewer GET {path}");
        assert!(!v.to_string().contains("nightly-tok-123456"), "{v:#}");
        let r = app.req(&operator, Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "operator GET {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            token_seen("operator", &v),
            "nightly-tok-123456",
            "operator GET {path}"
        );
        let v = app.get(path).await;
        assert_eq!(
            token_seen("admin", &v),
            "nightly-tok-123456",
            "admin GET {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_monitors_paths_as_monitors() {
    let app = MonApp::start(crate::support::Backend::Sqlite)
        .await
        .unwrap();
    let doc = app.get("/openapi.json").await;
    let response = |path: &str, method: &str, code: &str| {
        doc["paths"][path][method]["responses"][code]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("no {code} on {method} {path}"))
            .to_owned()
    };
    for (path, method) in [
        ("/api/v1/monitors/{id}", "get"),
        ("/api/v1/monitors/{id}", "delete"),
        ("/api/v1/monitors/{id}/results", "get"),
        ("/api/v1/monitors/{id}/uptime", "get"),
    ] {
        let d = response(path, method, "404");
        assert!(
            d.contains("monitor") && !d.contains("server\""),
            "{method} {path}: {d}"
        );
        assert_ne!(d, "No such server", "{method} {path}");
    }
    for (path, method) in [
        ("/api/v1/monitors", "post"),
        ("/api/v1/monitors/{id}", "patch"),
        ("/api/v1/monitors/{id}", "delete"),
    ] {
        let d = response(path, method, "409");
        assert!(!d.contains("Hostname"), "{method} {path}: {d}");
    }
    // the servers keep theirs
    assert_eq!(
        response("/api/v1/servers/{id}", "get", "404"),
        "No such server"
    );
    assert_eq!(
        response("/api/v1/servers", "post", "409"),
        "Hostname already taken"
    );
    let tags = doc["tags"].as_array().unwrap();
    let monitors = tags.iter().find(|t| t["name"] == "monitors").unwrap();
    assert!(
        monitors["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{monitors:#}"
    );
    app.stop().await;
}
