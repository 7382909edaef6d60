//! The engine as a service: the effective configuration (file + sources, file wins on a name
//! clash), a failing source keeps its last good monitors, a file reload, heartbeats, and one
//! process leading and running checks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use opskit_monitor::service::{MonitorSource, Origin, Service, ServiceEvent, ServiceOptions};
use opskit_monitor::{Config, Monitor};

use crate::support::{Backend, TestDb, config};

/// A source whose answer the test sets.
struct Fixed {
    origin: Origin,
    answer: Mutex<Result<String, String>>,
}

impl Fixed {
    fn new(origin: Origin, toml: &str) -> Arc<Fixed> {
        Arc::new(Fixed {
            origin,
            answer: Mutex::new(Ok(toml.to_string())),
        })
    }
    fn set(&self, answer: Result<&str, &str>) {
        *self.answer.lock().unwrap() = answer.map(str::to_string).map_err(str::to_string);
    }
}

impl MonitorSource for Fixed {
    fn origin(&self) -> Origin {
        self.origin
    }
    fn monitors<'a>(
        &'a self,
        _base: &'a Config,
    ) -> BoxFuture<'a, opskit_monitor::Result<Vec<Monitor>>> {
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move {
            match answer {
                Ok(text) => Ok(config(&text).monitors),
                Err(e) => Err(opskit_monitor::Error::Other(e)),
            }
        })
    }
}

fn tcp(name: &str, port: u16) -> String {
    format!(
        "[[monitor]]\nname = \"{name}\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:{port}\"\ninterval = \"1h\"\n"
    )
}

type Events = Arc<Mutex<Vec<ServiceEvent>>>;

fn recorder() -> (Events, impl Fn(ServiceEvent) + Send + Sync + 'static) {
    let events: Events = Arc::default();
    let e = events.clone();
    (events, move |ev| e.lock().unwrap().push(ev))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(s: &Service) -> Vec<String> {
    s.config().monitors.iter().map(|m| m.name.clone()).collect()
}

pub async fn file_and_sources_make_one_configuration(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitor.toml");
    std::fs::write(&file, format!("{}{}", tcp("web", 1), tcp("shared", 2))).unwrap();
    let api = Fixed::new(
        Origin::Api,
        &format!("{}{}", tcp("stored", 3), tcp("shared", 4)),
    );
    let inv = Fixed::new(Origin::Inventory, &tcp("stored", 5));
    let (events, on_event) = recorder();
    let mut opts = ServiceOptions::new(tdb.open().await);
    opts.config_path = Some(file.clone());
    opts.sources = vec![api.clone(), inv.clone()];
    opts.refresh = Duration::from_secs(3600);
    let s = Service::start(opts, on_event).await.unwrap();

    // The file wins over a source, an earlier source over a later one; each clash is said.
    assert_eq!(names(&s), ["web", "shared", "stored"]);
    assert_eq!(s.origin_of("shared"), Some(Origin::File));
    assert_eq!(s.origin_of("stored"), Some(Origin::Api));
    assert_eq!(s.origin_of("nope"), None);
    let shared = s.config().monitors[1].check.target();
    assert_eq!(shared, "127.0.0.1:2");
    {
        let ev = events.lock().unwrap();
        let clashes: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                ServiceEvent::NameClash {
                    name,
                    kept,
                    dropped,
                } => Some((name.clone(), *kept, *dropped)),
                _ => None,
            })
            .collect();
        assert_eq!(
            clashes,
            [
                ("shared".to_string(), Origin::File, Origin::Api),
                ("stored".to_string(), Origin::Api, Origin::Inventory)
            ]
        );
    }

    // A failing source keeps its last good monitors and says so once.
    api.set(Err("database is gone"));
    s.refresh_now();
    until("the failure is reported", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ServiceEvent::SourceFailed { origin: Origin::Api, error, kept: 2 } if error.contains("database is gone")))
    })
    .await;
    assert_eq!(names(&s), ["web", "shared", "stored"]);

    // It answers again with something new: applied on refresh_now.
    api.set(Ok(&tcp("added", 6)));
    s.refresh_now();
    until("the new stored monitor is applied", || {
        names(&s).contains(&"added".to_string())
    })
    .await;
    // "stored" now comes from the inventory, which the API source no longer shadows.
    assert_eq!(names(&s), ["web", "shared", "added", "stored"]);
    assert_eq!(s.origin_of("stored"), Some(Origin::Inventory));
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        ServiceEvent::SourceRecovered {
            origin: Origin::Api
        }
    )));

    // An invalid file is not applied; a valid one is.
    std::fs::write(&file, "[[monitor]]\nname = \"broken\"\n").unwrap();
    let _ = nix_touch(&file);
    until("the bad file is reported", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ServiceEvent::NotApplied { .. }))
    })
    .await;
    assert!(names(&s).contains(&"web".to_string()));
    std::fs::write(&file, tcp("renamed", 7)).unwrap();
    let _ = nix_touch(&file);
    until("the good file is applied", || {
        names(&s).first().map(String::as_str) == Some("renamed")
    })
    .await;
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ServiceEvent::Reloaded { monitors: 3 }))
    );
    s.stop().await.unwrap();
}

/// Moves the modification time forward, so the reload does not depend on the file system's
/// timestamp resolution.
fn nix_touch(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::File::options().write(true).open(path)?;
    let later = std::time::SystemTime::now() + Duration::from_secs(1);
    f.set_modified(later)
}

pub async fn heartbeats_and_leading(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitor.toml");
    std::fs::write(
        &file,
        "[[monitor]]\nname = \"cron\"\nkind = \"heartbeat\"\ntoken = \"token-123456\"\ngrace = \"1h\"\ninterval = \"1s\"\n",
    )
    .unwrap();
    let (events, on_event) = recorder();
    let mut opts = ServiceOptions::new(tdb.open().await);
    opts.config_path = Some(file);
    opts.lease = Duration::from_secs(2);
    let s = Service::start(opts, on_event).await.unwrap();
    assert!(!s.heartbeat("wrong").await.unwrap());
    assert!(s.heartbeat("token-123456").await.unwrap());
    let stored = s.db().heartbeats().await.unwrap();
    assert!(
        stored.iter().any(|(t, _)| t == "token-123456"),
        "{stored:?}"
    );

    until("this only process leads and checks", || {
        s.is_leader() && s.stats().checks.load(std::sync::atomic::Ordering::Relaxed) > 0
    })
    .await;
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ServiceEvent::Running { monitors: 1 }))
    );
    let metrics = s.render_metrics().await;
    assert!(metrics.contains("cron"), "{metrics}");
    let db = s.db().clone();
    s.stop().await.unwrap();
    // Stopping released the lease.
    let lease = opskit_monitor::lease::current(&db).await.unwrap().unwrap();
    assert!(!lease.is_live(), "{lease:?}");
}

/// A monitor's first check does not wait for its interval: one checked hourly is checked
/// within seconds of the start, not "pending" for up to an hour.
pub async fn the_first_check_comes_soon_whatever_the_interval(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitor.toml");
    std::fs::write(
        &file,
        format!("{}{}", tcp("hourly", port), tcp("hourly-2", port)),
    )
    .unwrap();
    let (_events, on_event) = recorder();
    let mut opts = ServiceOptions::new(tdb.open().await);
    opts.config_path = Some(file);
    let s = Service::start(opts, on_event).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for name in ["hourly", "hourly-2"] {
        loop {
            let page = opskit_monitor::query::results(s.db(), name, None, 10)
                .await
                .unwrap();
            if !page.items.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} (interval 1h) not checked within 30 s of the start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    s.stop().await.unwrap();
    drop(listener);
}

crate::both!(service::the_first_check_comes_soon_whatever_the_interval);
crate::both!(service::file_and_sources_make_one_configuration);
crate::both!(service::heartbeats_and_leading);
