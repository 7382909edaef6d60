//! The read cache on PostgreSQL with replicas: a write on one replica is served by the other
//! within 100 ms, never an old value after that; and while a replica's LISTEN connection is down
//! its cache is off (a write it was not told about is seen at once), and on again once it is back.

use std::time::{Duration, Instant};

use opskit_server::{Application, ServerConfig};
use reqwest::{Client, Method};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{ADMIN_PASSWORD, Options, TestApp, pg_url};

/// How long after the writer's answer another replica may still serve the old value.
const BOUND: Duration = Duration::from_millis(100);
/// Writes measured.
const WRITES: usize = 200;

/// A second `opskit serve` on the database of an existing one.
struct Replica {
    base: String,
    client: Client,
    token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Replica {
    fn of(app: &TestApp) -> Replica {
        Replica {
            base: app.base.clone(),
            client: app.client.clone(),
            token: app.admin.clone(),
            _stop: tokio::sync::oneshot::channel().0,
        }
    }

    async fn start(database_url: &str, token: &str) -> Replica {
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.to_owned(),
            rate_limit_per_minute: 1_000_000,
            login_rate_limit_per_minute: 10_000,
            admin_password: Some(SecretString::from(ADMIN_PASSWORD)),
            ..ServerConfig::default()
        };
        let app = Application::build(config).await.expect("build replica");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Replica {
            base,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            // the signing key is in the database: the first replica's token works here too
            token: token.to_owned(),
            _stop: tx,
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// `(status, body)` of a GET.
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.req(Method::GET, path).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// One value of this replica's /metrics.
    async fn metric(&self, name: &str) -> u64 {
        let text = self
            .req(Method::GET, "/metrics")
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    /// Reads `path` until one read is answered from the cache (the notification of a write this
    /// replica made may arrive just after it cached the first read), within 10 s; the hit count.
    async fn await_hit(&self, path: &str) -> u64 {
        let before = self.metric("opskit_server_cache_hits_total").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert_eq!(self.get(path).await.0, 200);
            let hits = self.metric("opskit_server_cache_hits_total").await;
            if hits > before {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never came from the cache"
            );
        }
    }

    /// Polls until the cache is on (`true`) or off, within 30 s.
    async fn await_cache(&self, on: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.metric("opskit_server_cache_enabled").await != u64::from(on) {
            assert!(
                Instant::now() < deadline,
                "the cache of {} did not turn {} within 30 s",
                self.base,
                if on { "on" } else { "off" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The ETag of a PATCH's answer.
    async fn patch(&self, id: &str, body: Value) -> String {
        let r = self
            .req(Method::PATCH, &format!("/api/v1/servers/{id}"))
            .header("content-type", "application/merge-patch+json")
            .json(&body)
            .send()
            .await
            .expect("PATCH");
        assert_eq!(r.status(), 200, "PATCH {id}");
        r.headers()["etag"].to_str().expect("etag").to_owned()
    }

    /// `(status, ETag)` of a GET.
    async fn etag(&self, path: &str) -> (u16, String) {
        let r = self.req(Method::GET, path).send().await.expect("GET");
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (r.status().as_u16(), etag)
    }
}

/// Reads from `reader` until `fresh` holds; a read that started after `answered + BOUND` and
/// still saw the old state fails the test. Returns when the fresh answer arrived, after
/// `answered`.
async fn lag_until_fresh(what: &str, answered: Instant, fresh: impl AsyncFn() -> bool) -> Duration {
    loop {
        let started = Instant::now();
        if fresh().await {
            // and it stays fresh: a fill that raced the invalidation must not bring the old back
            assert!(
                fresh().await,
                "{what}: the old value came back after the new one"
            );
            return answered.elapsed();
        }
        assert!(
            started.duration_since(answered) <= BOUND,
            "{what}: still the old value {:?} after the writer's answer (bound {BOUND:?})",
            started.duration_since(answered)
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Two replicas on one PostgreSQL, both with the cache on (the default): 200 updates alternating
/// between them, each read back from the other replica (GET by id and the list, both cached
/// there beforehand); then a delete and a create the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_is_served_by_the_other_within_100ms() {
    let Some(app) = TestApp::start_pg(Options::default()).await else {
        return;
    };
    let a = Replica::of(&app);
    let b = Replica::start(&app.database_url, &app.admin).await;
    a.await_cache(true).await;
    b.await_cache(true).await;
    let created = app.create_ok("coherent.example.com", "prod").await;
    let id = created["id"].as_str().expect("id").to_owned();
    let by_id = format!("/api/v1/servers/{id}");
    let list = "/api/v1/servers?per_page=200";
    let hits_before = [
        a.metric("opskit_server_cache_hits_total").await,
        b.metric("opskit_server_cache_hits_total").await,
    ];

    let mut lags = Vec::with_capacity(WRITES);
    for i in 1..=WRITES {
        let (writer, reader) = if i % 2 == 1 { (&a, &b) } else { (&b, &a) };
        // the reader holds the current state in its cache (the second read of each is a hit)
        for _ in 0..2 {
            assert_eq!(reader.get(&by_id).await.0, 200);
            assert_eq!(reader.get(list).await.0, 200);
        }
        let ip = format!("10.7.{}.{}", i / 256, i % 256);
        let etag = writer.patch(&id, json!({"ip": ip})).await;
        let answered = Instant::now();
        let lag = lag_until_fresh(&format!("update {i}"), answered, async || {
            let (s, tag) = reader.etag(&by_id).await;
            let (_, page) = reader.get(list).await;
            let listed = page["data"]
                .as_array()
                .and_then(|d| d.iter().find(|s| s["id"] == id.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            s == 200 && tag == etag && listed["ip"] == ip.as_str()
        })
        .await;
        lags.push(lag);
    }

    // a delete on A: B answers 404 and lists nothing
    assert_eq!(b.get(&by_id).await.0, 200);
    let r = a.req(Method::DELETE, &by_id).send().await.expect("DELETE");
    assert_eq!(r.status(), 204);
    let answered = Instant::now();
    let delete_lag = lag_until_fresh("delete", answered, async || {
        b.get(&by_id).await.0 == 404 && b.get(list).await.1["total"] == 0
    })
    .await;
    // a create on B: A lists it and finds it by hostname
    assert_eq!(a.get("/api/v1/servers/fresh.example.com").await.0, 404);
    assert_eq!(a.get(list).await.1["total"], 0);
    let r = b
        .req(Method::POST, "/api/v1/servers")
        .json(&json!({"hostname": "fresh.example.com", "ip": "10.0.0.9", "env": "prod"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    let answered = Instant::now();
    let create_lag = lag_until_fresh("create", answered, async || {
        a.get("/api/v1/servers/fresh.example.com").await.0 == 200
            && a.get(list).await.1["total"] == 1
    })
    .await;

    lags.sort();
    eprintln!(
        "{WRITES} updates, time from the writer's answer to the other replica's fresh answer \
         (GET by id + list): min {}, p50 {}, p90 {}, p99 {}, max {}; delete {}, create {}",
        ms(lags[0]),
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.9)),
        ms(percentile(&lags, 0.99)),
        ms(lags[lags.len() - 1]),
        ms(delete_lag),
        ms(create_lag),
    );
    // and the cache was really in use on both (else this would prove nothing)
    for (r, before) in [(&a, hits_before[0]), (&b, hits_before[1])] {
        let hits = r.metric("opskit_server_cache_hits_total").await;
        assert!(
            hits >= before + WRITES as u64 / 2,
            "{}: {hits} cache hits (from {before}): the cache was not used",
            r.base
        );
        assert_eq!(r.metric("opskit_server_cache_enabled").await, 1);
    }
}

/// Kills a replica's LISTEN connection with `pg_terminate_backend` while new connections to its
/// database are refused (so it cannot come straight back): its cache turns off, and a change it
/// was not told about (a raw SQL update made meanwhile) is served at once. Once connections are
/// allowed again the listener comes back, the cache turns on, and follows changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_listener_turns_the_cache_off_until_it_is_back() {
    let Some(app) = TestApp::start_pg(Options::default()).await else {
        return;
    };
    let a = Replica::of(&app);
    a.await_cache(true).await;
    let created = app.create_ok("listener.example.com", "prod").await;
    let id = created["id"].as_str().expect("id").to_owned();
    let by_id = format!("/api/v1/servers/{id}");
    assert_eq!(a.get(&by_id).await.1["ip"], "10.0.0.1");
    let hits = a.await_hit(&by_id).await;

    let db_name = url::Url::parse(&app.database_url).expect("url").path()[1..].to_owned();
    let base = pg_url().expect("postgres url");
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    let mut raw = sqlx::PgConnection::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    let allow = async |admin: &mut sqlx::PgConnection, yes: bool| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {db_name} ALLOW_CONNECTIONS {yes}"
        )))
        .execute(admin)
        .await
        .expect("ALTER DATABASE");
    };
    allow(&mut admin, false).await;
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'opskit-cache-listener'",
    )
    .bind(&db_name)
    .fetch_all(&mut admin)
    .await
    .expect("pg_stat_activity");
    assert_eq!(pids.len(), 1, "one listener connection: {pids:?}");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .fetch_one(&mut admin)
        .await
        .expect("pg_terminate_backend");
    assert!(killed);
    a.await_cache(false).await;
    assert_eq!(a.metric("opskit_server_cache_listener_up").await, 0);
    // read while it is down (a cache still in use would keep this answer)
    for _ in 0..2 {
        assert_eq!(a.get(&by_id).await.1["ip"], "10.0.0.1");
    }

    // nobody listens now: this change reaches no cache, yet it is served at once
    sqlx::query("UPDATE servers SET ip = '10.0.0.2', version = version + 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut raw)
        .await
        .expect("raw update");
    let (_, now) = a.get(&by_id).await;
    assert_eq!(
        now["ip"], "10.0.0.2",
        "served a value the database no longer has"
    );
    assert_eq!(a.get(&by_id).await.1["ip"], "10.0.0.2");
    assert_eq!(
        a.metric("opskit_server_cache_hits_total").await,
        hits,
        "the cache answered while its listener was down"
    );

    allow(&mut admin, true).await;
    a.await_cache(true).await;
    assert_eq!(a.metric("opskit_server_cache_listener_up").await, 1);
    assert_eq!(
        a.metric("opskit_server_cache_listener_losses_total").await,
        1
    );
    // back: used again, and told again about raw SQL changes (the trigger notifies)
    assert_eq!(a.get(&by_id).await.1["ip"], "10.0.0.2");
    a.await_hit(&by_id).await;
    assert_eq!(a.get(&by_id).await.1["ip"], "10.0.0.2");
    sqlx::query("UPDATE servers SET ip = '10.0.0.3', version = version + 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut raw)
        .await
        .expect("raw update");
    let answered = Instant::now();
    lag_until_fresh("raw update after reconnect", answered, async || {
        a.get(&by_id).await.1["ip"] == "10.0.0.3"
    })
    .await;
}
