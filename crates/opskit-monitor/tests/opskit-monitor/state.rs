//! The alert state machine on SQLite and PostgreSQL: thresholds, flapping, restart mid-incident,
//! the guard, maintenance windows and reminders. Results are fed through real checks of the
//! fixture service; the clock is injected (no waiting).

use opskit_monitor::scheduler::check_and_record;
use opskit_monitor::{Checker, Status};
use sqlx::Row as _;

use crate::both;
use crate::support::{Backend, Service, TestDb, config};

/// Outbox rows as `(destination, event)`, oldest first.
async fn outbox(db: &opskit_monitor::store::Db) -> Vec<(String, String)> {
    let url = db.clone();
    let rows = sqlx::query("SELECT destination, event FROM outbox ORDER BY seq")
        .fetch_all(pool(&url))
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn pool(db: &opskit_monitor::store::Db) -> &sqlx::AnyPool {
    db.pool()
}

fn cfg(svc: &Service, extra: &str) -> opskit_monitor::Config {
    config(&format!(
        r#"{extra}
[destinations.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[monitor]]
name = "api"
kind = "http"
target = "{}"
conditions = [".status == 200"]
alerts = ["hook"]
"#,
        svc.url("/switch")
    ))
}

const T0: i64 = 1_790_000_000_000;

both!(state::exactly_one_alert_after_n_failures_and_one_resolve_after_m_successes);
pub async fn exactly_one_alert_after_n_failures_and_one_resolve_after_m_successes(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let c = cfg(&svc, "");
    let m = &c.monitors[0];
    let checker = Checker::default();
    let mut t = T0;
    let mut step = |code: u16| {
        svc.set(code);
        t += 60_000;
        t
    };
    for i in 1..=2 {
        let now = step(503);
        let (r, rec) = check_and_record(&db, &checker, &c, m, now).await.unwrap();
        assert_eq!(r.status, Status::Down);
        assert!(rec.alerts.is_empty(), "failure {i} must not alert");
    }
    let now = step(503);
    let (_, rec) = check_and_record(&db, &checker, &c, m, now).await.unwrap();
    assert_eq!(
        rec.alerts,
        vec![("hook".to_string(), "trigger".to_string())]
    );
    assert!(rec.opened.is_some());
    for _ in 0..4 {
        let now = step(503);
        check_and_record(&db, &checker, &c, m, now).await.unwrap();
    }
    assert_eq!(outbox(&db).await.len(), 1, "still down: no second alert");
    let now = step(200);
    let (_, rec) = check_and_record(&db, &checker, &c, m, now).await.unwrap();
    assert!(rec.alerts.is_empty(), "one success is not enough");
    let now = step(200);
    let (_, rec) = check_and_record(&db, &checker, &c, m, now).await.unwrap();
    assert_eq!(
        rec.alerts,
        vec![("hook".to_string(), "resolve".to_string())]
    );
    assert!(rec.closed.is_some());
    for _ in 0..3 {
        let now = step(200);
        check_and_record(&db, &checker, &c, m, now).await.unwrap();
    }
    assert_eq!(
        outbox(&db).await,
        vec![
            ("hook".to_string(), "trigger".to_string()),
            ("hook".to_string(), "resolve".to_string())
        ]
    );
    let st = opskit_monitor::status::status(&db, t).await.unwrap();
    assert_eq!(st[0].status, "up");
    assert!(st[0].incident.is_none());
    // 7 down + 5 up, all in the same day.
    let u = st[0].uptime_30d.unwrap();
    assert!((u - 41.67).abs() < 0.01, "{u}");
}

both!(state::flapping_below_the_threshold_never_alerts);
pub async fn flapping_below_the_threshold_never_alerts(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let c = cfg(&svc, "");
    let m = &c.monitors[0];
    let checker = Checker::default();
    let mut t = T0;
    for code in [503, 503, 200, 503, 503, 200, 503, 200, 503, 503, 200, 200] {
        svc.set(code);
        t += 30_000;
        check_and_record(&db, &checker, &c, m, t).await.unwrap();
    }
    assert!(outbox(&db).await.is_empty());
}

both!(state::restart_mid_incident_sends_no_second_alert_and_resolves_later);
pub async fn restart_mid_incident_sends_no_second_alert_and_resolves_later(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let svc = Service::start().await;
    let c = cfg(&svc, "");
    let m = &c.monitors[0];
    let mut t = T0;
    {
        let db = tdb.open().await;
        let checker = Checker::default();
        svc.set(500);
        for _ in 0..4 {
            t += 60_000;
            check_and_record(&db, &checker, &c, m, t).await.unwrap();
        }
        db.close().await;
    }
    // A new process: new pool, new checker, same database.
    let db = tdb.open().await;
    let checker = Checker::default();
    for _ in 0..5 {
        t += 60_000;
        let (_, rec) = check_and_record(&db, &checker, &c, m, t).await.unwrap();
        assert!(rec.alerts.is_empty());
    }
    svc.set(200);
    for _ in 0..2 {
        t += 60_000;
        check_and_record(&db, &checker, &c, m, t).await.unwrap();
    }
    assert_eq!(
        outbox(&db).await,
        vec![
            ("hook".to_string(), "trigger".to_string()),
            ("hook".to_string(), "resolve".to_string())
        ]
    );
}

both!(state::guard_down_records_unknown_and_never_alerts);
pub async fn guard_down_records_unknown_and_never_alerts(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = cfg(&svc, &format!("[settings]\nguard = [\"{closed}\"]\n"));
    let m = &c.monitors[0];
    let checker = Checker::default();
    svc.set(503);
    let mut t = T0;
    for _ in 0..6 {
        t += 60_000;
        let (r, rec) = check_and_record(&db, &checker, &c, m, t).await.unwrap();
        assert_eq!(r.status, Status::Unknown);
        assert!(r.reason.unwrap().contains("guard"));
        assert!(rec.alerts.is_empty());
    }
    assert!(outbox(&db).await.is_empty());
    let st = opskit_monitor::status::status(&db, t).await.unwrap();
    assert_eq!(st[0].status, "unknown");
    assert_eq!(
        st[0].uptime_24h, None,
        "unknown results do not count against uptime"
    );

    // With a guard that answers, the same failures alert.
    let c = cfg(&svc, &format!("[settings]\nguard = [\"{}\"]\n", svc.addr));
    for _ in 0..3 {
        t += 60_000;
        check_and_record(&db, &checker, &c, &c.monitors[0], t)
            .await
            .unwrap();
    }
    assert_eq!(outbox(&db).await.len(), 1);
}

both!(state::maintenance_window_silences);
pub async fn maintenance_window_silences(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    // T0 is 2026-09-21T…Z; a one-off window over the first ten minutes after it.
    let from = jiff::Timestamp::from_millisecond(T0).unwrap();
    let until = jiff::Timestamp::from_millisecond(T0 + 600_000).unwrap();
    let c = cfg(
        &svc,
        &format!(
            "[[maintenance]]\nname = \"deploy\"\nmonitors = [\"api\"]\nfrom = \"{from}\"\nuntil = \"{until}\"\n"
        ),
    );
    let m = &c.monitors[0];
    let checker = Checker::default();
    svc.set(503);
    let mut t = T0;
    for _ in 0..9 {
        t += 60_000;
        let (_, rec) = check_and_record(&db, &checker, &c, m, t).await.unwrap();
        assert!(rec.in_maintenance);
        assert!(rec.alerts.is_empty());
    }
    assert!(outbox(&db).await.is_empty());
    // After the window, failures count from zero.
    for i in 1..=3 {
        t += 60_000;
        let (_, rec) = check_and_record(&db, &checker, &c, m, t).await.unwrap();
        assert!(!rec.in_maintenance);
        assert_eq!(rec.alerts.len(), usize::from(i == 3));
    }
}

both!(state::remind_every_while_down);
pub async fn remind_every_while_down(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let c = cfg(
        &svc,
        "[defaults]\nremind_every = \"10m\"\nfailure_threshold = 1\n",
    );
    let m = &c.monitors[0];
    let checker = Checker::default();
    svc.set(500);
    let mut t = T0;
    for _ in 0..25 {
        t += 60_000;
        check_and_record(&db, &checker, &c, m, t).await.unwrap();
    }
    let events: Vec<String> = outbox(&db).await.into_iter().map(|e| e.1).collect();
    assert_eq!(events, ["trigger", "remind", "remind"]);
}
