//! The leader lease and fencing on SQLite and PostgreSQL: one leader at a time, takeover only
//! after expiry with a higher token, and a deposed leader that believes it still leads (paused
//! past its lease) can neither record a result nor claim an alert for delivery.

use std::time::Duration;

use opskit_monitor::deliver::Dispatcher;
use opskit_monitor::lease::{Acquired, Elector, current};
use opskit_monitor::scheduler::check_and_record;
use opskit_monitor::{Checker, Error};
use sqlx::Row as _;

use crate::both;
use crate::support::{Backend, Receiver, Service, TestDb, config};

const LONG: Duration = Duration::from_secs(600);

fn elector(db: &opskit_monitor::store::Db, name: &str, lease: Duration) -> Elector {
    Elector::new(db.clone(), format!("test:{name}"), lease)
}

async fn count(db: &opskit_monitor::store::Db, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// Ends the current lease now, as if its holder had stopped renewing long ago (a paused
/// leader whose own clock has not noticed yet).
async fn expire(db: &opskit_monitor::store::Db) {
    sqlx::query("UPDATE leader_lease SET expires_ms = 0")
        .execute(db.pool())
        .await
        .unwrap();
}

both!(lease::one_leader_and_a_takeover_only_after_expiry_with_a_higher_token);
pub async fn one_leader_and_a_takeover_only_after_expiry_with_a_higher_token(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    assert_eq!(current(&db).await.unwrap(), None);
    let a = elector(&db, "a", Duration::from_secs(1));
    let b2 = elector(&db, "b", Duration::from_secs(1));
    let Acquired::Won(won) = a.try_acquire().await.unwrap() else {
        panic!("the first instance leads");
    };
    assert_eq!((won.token, won.holder.as_str()), (1, "test:a"));
    assert_eq!(a.fence().token(), Some(1));
    match b2.try_acquire().await.unwrap() {
        Acquired::Held(l) => assert_eq!((l.holder.as_str(), l.token), ("test:a", 1)),
        other => panic!("a live lease is not taken over: {other:?}"),
    }
    assert_eq!(b2.fence().token(), None);
    assert!(a.renew().await.unwrap(), "the holder renews");
    let renewed = current(&db).await.unwrap().unwrap();

    // A stops renewing; B takes over only once the lease ran out by the database's clock.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        if let Acquired::Won(l) = b2.try_acquire().await.unwrap() {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((taken.holder.as_str(), taken.token), ("test:b", 2));
    assert!(
        taken.since_ms >= renewed.expires_ms,
        "taken over at {} before the lease ran out at {}",
        taken.since_ms,
        renewed.expires_ms
    );
    // The old holder cannot renew: it has stepped down.
    assert!(!a.renew().await.unwrap());
    assert_eq!(a.fence().token(), None);
    // A clean release lets the next instance lead at once, with the next token.
    b2.release().await.unwrap();
    match a.try_acquire().await.unwrap() {
        Acquired::Won(l) => assert_eq!(l.token, 3),
        other => panic!("a released lease is free: {other:?}"),
    }
}

both!(lease::a_deposed_leader_records_nothing_and_sends_nothing);
pub async fn a_deposed_leader_records_nothing_and_sends_nothing(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let rx = Receiver::start().await;
    svc.set(503);
    let c = config(&format!(
        r#"[destinations.hook]
type = "webhook"
url = "{}"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[monitor]]
name = "api"
kind = "http"
target = "{}"
conditions = [".status == 200"]
alerts = [{{ destination = "hook", failure_threshold = 1 }}]
"#,
        rx.url("/hook"),
        svc.url("/switch")
    ));
    let m = &c.monitors[0];
    let checker = Checker::default();
    let old = elector(&db, "old", LONG);
    assert!(matches!(old.try_acquire().await.unwrap(), Acquired::Won(_)));
    let old_db = old.fenced_db();
    let t = opskit_monitor::now_ms();
    let (_, rec) = check_and_record(&old_db, &checker, &c, m, t).await.unwrap();
    assert_eq!(rec.alerts.len(), 1, "the leader records and alerts");
    // Its first delivery attempt fails (the receiver answers 500): the row stays claimed by it.
    rx.script(&[500]);
    let old_dispatch = Dispatcher::new(old_db.clone()).unwrap();
    assert_eq!(old_dispatch.deliver_due(&c, t, 4).await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 1);

    // The old leader is paused past its lease; another instance takes over.
    expire(&db).await;
    let new = elector(&db, "new", LONG);
    assert!(matches!(new.try_acquire().await.unwrap(), Acquired::Won(l) if l.token == 2));
    assert_eq!(
        old.fence().token(),
        Some(1),
        "the paused leader has not noticed"
    );

    // Resumed, it can record nothing (the whole transaction is refused) …
    let results = count(&db, "SELECT COUNT(*) FROM results").await;
    let err = check_and_record(&old_db, &checker, &c, m, t + 60_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced(_)), "{err}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM results").await, results);
    assert_eq!(old.fence().token(), None, "the refusal makes it step down");
    // … and send nothing.
    let later = t + 3_600_000;
    let err = old_dispatch.deliver_due(&c, later, 4).await.unwrap_err();
    assert!(matches!(err, Error::Fenced(_)), "{err}");
    assert_eq!(rx.requests().len(), 1, "no request from the deposed leader");

    // The new leader delivers the alert the old one claimed, with the same webhook id.
    let new_dispatch = Dispatcher::new(new.fenced_db()).unwrap();
    assert_eq!(new_dispatch.deliver_due(&c, later, 4).await.unwrap(), 1);
    let got = rx.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    let claimed = sqlx::query("SELECT claim_token, delivered_ms FROM outbox")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(claimed.get::<Option<i64>, _>(0), Some(2));
    assert!(claimed.get::<Option<i64>, _>(1).is_some());
    // Its own results count.
    check_and_record(&new.fenced_db(), &checker, &c, m, t + 120_000)
        .await
        .unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM results").await,
        results + 1
    );
}

both!(lease::a_restart_on_the_same_host_after_a_crash_leads_at_once);
pub async fn a_restart_on_the_same_host_after_a_crash_leads_at_once(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    // `host:pid:random.pidns`, as default_holder() writes it.
    let me = opskit_monitor::lease::default_holder();
    let mut parts = me.splitn(3, ':');
    let host = parts.next().unwrap().to_string();
    let ns = parts.nth(1).unwrap().split_once('.').unwrap().1.to_string();
    // A live process of this host holds the lease: it is waited out.
    let mut alive = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let held = Elector::new(db.clone(), format!("{host}:{}:aa.{ns}", alive.id()), LONG);
    assert!(matches!(
        held.try_acquire().await.unwrap(),
        Acquired::Won(_)
    ));
    let next = Elector::new(db.clone(), format!("{host}:1:bb.{ns}"), LONG);
    assert!(matches!(
        next.try_acquire().await.unwrap(),
        Acquired::Held(_)
    ));
    // The holder is killed: the next instance on this host takes over without waiting.
    alive.kill().unwrap();
    alive.wait().unwrap();
    match next.try_acquire().await.unwrap() {
        Acquired::Won(l) => assert_eq!(l.token, 2),
        other => panic!("the crashed holder's lease is taken at once: {other:?}"),
    }
    // A holder on another host is never presumed dead.
    expire(&db).await;
    let remote = Elector::new(db.clone(), format!("elsewhere:1:cc.{ns}"), LONG);
    assert!(matches!(
        remote.try_acquire().await.unwrap(),
        Acquired::Won(_)
    ));
    let local = Elector::new(db.clone(), format!("{host}:1:dd.{ns}"), LONG);
    assert!(matches!(
        local.try_acquire().await.unwrap(),
        Acquired::Held(_)
    ));
    // Nor is one of this host name in another PID namespace (another container).
    expire(&db).await;
    let other_ns = Elector::new(db.clone(), format!("{host}:1:ee.1"), LONG);
    assert!(matches!(
        other_ns.try_acquire().await.unwrap(),
        Acquired::Won(_)
    ));
    assert!(matches!(
        local.try_acquire().await.unwrap(),
        Acquired::Held(_)
    ));
}
