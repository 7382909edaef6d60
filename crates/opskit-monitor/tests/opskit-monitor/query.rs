//! The read queries of the monitors API (issue 14) on SQLite and PostgreSQL: paged raw results,
//! uptime with per-day buckets, incidents open and past with the failed condition and alerts.

use opskit_monitor::Checker;
use opskit_monitor::query::{IncidentFilter, incidents, results, uptime};
use opskit_monitor::scheduler::check_and_record;

use crate::both;
use crate::support::{Backend, Service, TestDb, config};

const T0: i64 = 1_790_000_000_000;

both!(query::results_uptime_and_incidents_as_the_api_shows_them);
pub async fn results_uptime_and_incidents_as_the_api_shows_them(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let c = config(&format!(
        r#"[destinations.hook]
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
    ));
    let m = &c.monitors[0];
    let checker = Checker::default();
    let mut t = T0;
    // down x3 (incident 1, trigger), up x2 (resolve), down x3 (incident 2, open)
    for code in [503, 503, 503, 200, 200, 503, 503, 503] {
        svc.set(code);
        t += 60_000;
        check_and_record(&db, &checker, &c, m, t).await.unwrap();
    }

    // Results, newest first, three at a time, every one exactly once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = results(&db, "api", before, 3).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|r| (r.at_ms, r.status.clone())));
        match page.next_before_ms {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0], (t, "down".to_string()));
    assert!(seen.windows(2).all(|w| w[0].0 > w[1].0));
    assert!(
        results(&db, "nope", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Uptime: 2 up of 8 on one day.
    let u = uptime(&db, "api", t).await.unwrap();
    assert_eq!(u.uptime_24h, Some(25.0));
    assert_eq!(u.uptime_7d, Some(25.0));
    assert_eq!(u.uptime_30d, Some(25.0));
    assert_eq!(u.days.len(), 1);
    assert_eq!((u.days[0].up, u.days[0].down), (2, 6));
    assert_eq!(u.days[0].day_ms, t - t.rem_euclid(86_400_000));
    // A month later, nothing is left in the windows.
    let later = uptime(&db, "api", t + 31 * 86_400_000).await.unwrap();
    assert_eq!((later.uptime_30d, later.days.len()), (None, 0));

    // Incidents: the open one first, then the past one with its alerts.
    let all = incidents(&db, Some("api"), IncidentFilter::All, None, 10)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(all.items[0].resolved_ms.is_none());
    let past = &all.items[1];
    assert_eq!(past.resolved_ms, Some(T0 + 5 * 60_000));
    assert_eq!(
        past.alerts
            .iter()
            .map(|a| a.event.as_str())
            .collect::<Vec<_>>(),
        ["trigger", "resolve"]
    );
    assert!(past.alerts.iter().all(|a| a.id.starts_with("msg_")));
    assert_eq!(
        past.failed_condition.as_ref().unwrap()["condition"],
        ".status == 200"
    );
    assert!(past.reason.as_deref().unwrap().contains("503"));
    let open = incidents(&db, None, IncidentFilter::Open, None, 10)
        .await
        .unwrap();
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].id, all.items[0].id);
    let gone = incidents(&db, None, IncidentFilter::Past, None, 10)
        .await
        .unwrap();
    assert_eq!(gone.items.len(), 1);
    assert_eq!(gone.items[0].id, past.id);
    // Paged one at a time.
    let first = incidents(&db, None, IncidentFilter::All, None, 1)
        .await
        .unwrap();
    assert_eq!(first.items[0].id, all.items[0].id);
    let second = incidents(&db, None, IncidentFilter::All, first.next_before_ms, 1)
        .await
        .unwrap();
    assert_eq!(second.items[0].id, past.id);
    assert_eq!(second.next_before_ms, None);
}
