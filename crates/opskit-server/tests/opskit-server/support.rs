use std::time::Duration;

use opskit_server::{Application, ServerConfig};
use reqwest::{Client, Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Connection;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Settings a test may change.
#[derive(Default, Clone)]
pub struct Options {
    pub rate_limit: Option<u32>,
    pub login_rate_limit: Option<u32>,
    pub cors: Vec<String>,
    pub basic_auth: Option<bool>,
    pub body_limit: Option<usize>,
    pub access_ttl: Option<Duration>,
    /// A `whsec_` secret for POST /api/v1/events.
    pub events_secret: Option<&'static str>,
    pub request_timeout: Option<Duration>,
    pub user_recheck: Option<Duration>,
    pub header_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub admin: String,
    pub database_url: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn fresh_pg_database(base: &str) -> String {
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to OPSKIT_TEST_POSTGRES_URL");
    let name = format!("opskit_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(base).expect("postgres url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The PostgreSQL URL, or None (skip) when unset outside CI; panics under CI=true.
pub fn pg_url() -> Option<String> {
    match std::env::var("OPSKIT_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "OPSKIT_TEST_POSTGRES_URL is not set (CI=true): run scripts/test, which starts PostgreSQL"
                );
            }
            eprintln!("skipping: OPSKIT_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

impl TestApp {
    pub async fn start_pg(opts: Options) -> Option<TestApp> {
        pg_url()?;
        Some(TestApp::start(Backend::Postgres, opts).await)
    }

    pub async fn start(backend: Backend, opts: Options) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => fresh_pg_database(&pg_url().expect("postgres url")).await,
        };
        let d = ServerConfig::default();
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.clone(),
            cors_origins: opts.cors,
            rate_limit_per_minute: opts.rate_limit.unwrap_or(100_000),
            login_rate_limit_per_minute: opts.login_rate_limit.unwrap_or(10_000),
            body_limit_bytes: opts.body_limit.unwrap_or(d.body_limit_bytes),
            access_token_ttl: opts.access_ttl.unwrap_or(d.access_token_ttl),
            request_timeout: opts.request_timeout.unwrap_or(d.request_timeout),
            user_recheck: opts.user_recheck.unwrap_or(d.user_recheck),
            header_read_timeout: opts.header_timeout.unwrap_or(d.header_read_timeout),
            idle_timeout: opts.idle_timeout.unwrap_or(d.idle_timeout),
            max_connections: opts.max_connections.unwrap_or(d.max_connections),
            basic_auth: opts.basic_auth.unwrap_or(true),
            admin_password: Some(SecretString::from(ADMIN_PASSWORD)),
            events_secrets: opts
                .events_secret
                .map(|s| opskit_notify::signing::WebhookSecret::parse(s).expect("secret"))
                .into_iter()
                .collect(),
            ..d
        };
        let app = Application::build(config).await.expect("build app");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut t = TestApp {
            base,
            client,
            admin: String::new(),
            database_url,
            _dir: dir,
            _stop: tx,
        };
        t.admin = t.login("admin", ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        t
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with the admin's bearer token.
    pub fn admin_req(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(&self.admin)
    }

    pub async fn login(&self, user: &str, password: &str) -> Value {
        let r = self
            .req(Method::POST, "/auth/login")
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(r.status(), 200, "login of {user}");
        r.json().await.expect("login json")
    }

    /// Creates a user with a role and returns a bearer token for them.
    pub async fn user_token(&self, name: &str, role: &str) -> String {
        let state_role: opskit_server::model::Role = role.parse().expect("role");
        let db = self.db().await;
        opskit_server::users::add_user(
            &db,
            name,
            SecretString::from("user-password-1"),
            state_role,
        )
        .await
        .expect("add user");
        self.login(name, "user-password-1").await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// A direct handle on the same database (for admin operations the CLI would do).
    pub async fn db(&self) -> opskit_server::store::Db {
        opskit_server::users::open(&self.database_url)
            .await
            .expect("open database")
    }

    pub async fn create(&self, body: Value) -> Response {
        self.admin_req(Method::POST, "/api/v1/servers")
            .json(&body)
            .send()
            .await
            .expect("create")
    }

    pub async fn create_ok(&self, hostname: &str, env: &str) -> Value {
        let r = self
            .create(json!({"hostname": hostname, "ip": "10.0.0.1", "env": env}))
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.expect("json")
    }
}

/// Asserts a problem+json response and returns its body.
pub async fn problem(r: Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json", "content type");
    let body: Value = r.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string());
    body
}
