//! The daemon's loop: every monitor on its interval (first run spread by a random offset, so
//! 10,000 monitors do not start in the same second), at most `concurrency` checks at once, the
//! guard consulted before a down result counts, results recorded through the state machine, and
//! the outbox delivered as alerts appear. A new configuration replaces the old between two
//! checks; shutdown lets checks and deliveries in flight finish.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::check::{Checker, Status, guard_ok};
use crate::config::{Config, Monitor};
use crate::deliver::Dispatcher;
use crate::store::Db;
use crate::{Result, engine};

/// Counters of a running scheduler (for `/metrics` and the benchmark).
#[derive(Debug, Default)]
pub struct Stats {
    pub checks: AtomicU64,
    pub up: AtomicU64,
    pub down: AtomicU64,
    pub unknown: AtomicU64,
    /// A check came due while the previous one of the same monitor was still running.
    pub skipped: AtomicU64,
    pub record_errors: AtomicU64,
    /// How late each check started, in milliseconds after it was due (bounded sample; once
    /// full, new samples replace old ones).
    pub lateness_ms: Mutex<Vec<f32>>,
    /// Per-monitor series for `/metrics`.
    pub monitors: crate::metrics::Registry,
}

const LATENESS_SAMPLES: usize = 2_000_000;

/// A monitor's first check comes within this (or its interval, if shorter) of being scheduled.
const FIRST_CHECK_SPREAD: Duration = Duration::from_secs(10);

impl Stats {
    /// The `q` quantile (0..=1) of the lateness sample, in milliseconds.
    pub fn lateness_quantile(&self, q: f64) -> Option<f64> {
        let mut v = self.lateness_ms.lock().ok()?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        Some(f64::from(v[i.min(v.len() - 1)]))
    }
}

/// Caches the guard's answer for a few seconds.
struct Guard {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Guard {
    async fn ok(&self, checker: &Checker, config: &Config) -> bool {
        if config.settings.guard.is_empty() {
            return true;
        }
        if let Ok(l) = self.last.lock()
            && let Some((at, v)) = *l
            && at.elapsed() < Duration::from_secs(5)
        {
            return v;
        }
        let v = guard_ok(checker, &config.settings.guard, Duration::from_secs(5)).await;
        if let Ok(mut l) = self.last.lock() {
            *l = Some((Instant::now(), v));
        }
        v
    }
}

/// Runs one check of `monitor`, applies the guard and records the result.
pub async fn check_and_record(
    db: &Db,
    checker: &Checker,
    config: &Config,
    monitor: &Monitor,
    now_ms: i64,
) -> Result<(crate::Report, engine::Recorded)> {
    let guard = Guard {
        last: Mutex::new(None),
    };
    run_monitor(db, checker, config, monitor, &guard, now_ms).await
}

async fn run_monitor(
    db: &Db,
    checker: &Checker,
    config: &Config,
    monitor: &Monitor,
    guard: &Guard,
    now_ms: i64,
) -> Result<(crate::Report, engine::Recorded)> {
    let mut report = checker.run(monitor).await;
    if report.status == Status::Down && !guard.ok(checker, config).await {
        report.status = Status::Unknown;
        let why = report.reason.take().unwrap_or_default();
        report.reason = Some(format!(
            "unknown: no guard target answered (our own network may be down); the check said: {why}"
        ));
    }
    let rec = engine::record(db, config, monitor, &report, now_ms).await?;
    Ok((report, rec))
}

/// Closes the open incidents of monitors that left `config` (on taking the lead and after
/// every change of the configuration), so none stays open forever on the API and the status
/// page. A failure is logged; the next change (or the next leader) tries again.
async fn close_removed(db: &Db, config: &Config) {
    let present: HashSet<&str> = config.monitors.iter().map(|m| m.name.as_str()).collect();
    match db
        .close_incidents_of_removed(&present, crate::now_ms())
        .await
    {
        Ok(closed) if !closed.is_empty() => {
            tracing::info!(monitors = ?closed, "closed the open incidents of removed monitors");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "closing the incidents of removed monitors failed"),
    }
}

/// Runs the scheduler until `shutdown` turns true, then waits for checks and the delivery in
/// flight. `config` may change at any time (reload).
pub async fn run(
    db: Db,
    checker: Arc<Checker>,
    mut config: watch::Receiver<Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<Stats>,
) -> Result<()> {
    let dispatcher = Arc::new(Dispatcher::new(db.clone())?);
    let wake = Arc::new(Notify::new());
    let guard = Arc::new(Guard {
        last: Mutex::new(None),
    });

    // The dispatcher: wakes on new alerts, or every second for retries that came due. It stops
    // after the checks in flight have recorded their results.
    let (disp_stop, disp_stop_rx) = watch::channel(false);
    let disp = {
        let (dispatcher, wake, cfg, mut stop) = (
            dispatcher.clone(),
            wake.clone(),
            config.clone(),
            disp_stop_rx,
        );
        tokio::spawn(async move {
            loop {
                let c = cfg.borrow().clone();
                if let Err(e) = dispatcher.deliver_due(&c, crate::now_ms(), 8).await {
                    tracing::error!(error = %e, "outbox delivery failed");
                }
                if *stop.borrow() {
                    break;
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        })
    };

    let mut cfg = config.borrow_and_update().clone();
    let sem = Arc::new(Semaphore::new(cfg.settings.concurrency));
    let mut by_name: HashMap<String, Arc<Monitor>> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(Instant, u64, String)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut last_retention = Instant::now();

    // Monitors whose first check is still to come: it comes within FIRST_CHECK_SPREAD (a new
    // monitor, or one after a start or a takeover, is not "pending" for a whole interval), and
    // the check after it lands at a random phase of the interval, so many monitors spread out.
    let mut first: HashSet<String> = HashSet::new();
    let schedule_all = |cfg: &Config,
                        heap: &mut BinaryHeap<Reverse<(Instant, u64, String)>>,
                        by_name: &mut HashMap<String, Arc<Monitor>>,
                        first: &mut HashSet<String>,
                        seq: &mut u64| {
        let old: HashMap<String, Arc<Monitor>> = std::mem::take(by_name);
        let old_due: HashMap<String, Instant> = heap
            .drain()
            .map(|Reverse((at, _, name))| (name, at))
            .collect();
        let now = Instant::now();
        for m in &cfg.monitors {
            let due = match (old.get(&m.name), old_due.get(&m.name)) {
                (Some(o), Some(at)) if o.interval == m.interval => *at,
                _ => {
                    let spread = m.interval.min(FIRST_CHECK_SPREAD);
                    first.insert(m.name.clone());
                    now + spread.mul_f64(rand::random::<f64>())
                }
            };
            by_name.insert(m.name.clone(), Arc::new(m.clone()));
            *seq += 1;
            heap.push(Reverse((due, *seq, m.name.clone())));
        }
    };
    schedule_all(&cfg, &mut heap, &mut by_name, &mut first, &mut seq);
    close_removed(&db, &cfg).await;

    loop {
        let next = heap.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            _ = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = Instant::now();
                while let Some(Reverse((due, _, _))) = heap.peek() {
                    if *due > now {
                        break;
                    }
                    let Some(Reverse((due, _, name))) = heap.pop() else { break };
                    let Some(monitor) = by_name.get(&name).cloned() else { continue };
                    seq += 1;
                    let next = if first.remove(&name) {
                        due + monitor.interval.mul_f64(rand::random::<f64>().max(0.05))
                    } else {
                        due + monitor.interval
                    };
                    heap.push(Reverse((next, seq, name.clone())));
                    let busy = running.lock().map(|mut r| !r.insert(name.clone())).unwrap_or(true);
                    if busy {
                        stats.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let permit = match sem.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    };
                    let late = Instant::now().saturating_duration_since(due).as_secs_f64() * 1000.0;
                    if let Ok(mut l) = stats.lateness_ms.lock() {
                        if l.len() < LATENESS_SAMPLES {
                            l.push(late as f32);
                        } else {
                            // Full: overwrite an old sample, so the figure follows the present.
                            let i = (seq % LATENESS_SAMPLES as u64) as usize;
                            if let Some(slot) = l.get_mut(i) {
                                *slot = late as f32;
                            }
                        }
                    }
                    let (db, checker, cfg, guard, stats, running, wake) = (
                        db.clone(), checker.clone(), cfg.clone(), guard.clone(),
                        stats.clone(), running.clone(), wake.clone(),
                    );
                    tasks.spawn(async move {
                        let r = run_monitor(&db, &checker, &cfg, &monitor, &guard, crate::now_ms()).await;
                        match r {
                            Ok((report, rec)) => {
                                stats.checks.fetch_add(1, Ordering::Relaxed);
                                stats.monitors.observe(&monitor.name, &report, rec.in_maintenance);
                                let c = match report.status {
                                    Status::Up => &stats.up,
                                    Status::Down => &stats.down,
                                    Status::Unknown => &stats.unknown,
                                };
                                c.fetch_add(1, Ordering::Relaxed);
                                if !rec.alerts.is_empty() {
                                    wake.notify_one();
                                }
                                if stats.checks.load(Ordering::Relaxed).is_multiple_of(64)
                                    && let Err(e) = db.trim_results(&monitor.name, cfg.settings.keep_results).await
                                {
                                    tracing::warn!(error = %e, "trimming results failed");
                                }
                            }
                            Err(e) => {
                                stats.record_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(monitor = %monitor.name, error = %e, "recording a result failed");
                            }
                        }
                        if let Ok(mut r) = running.lock() {
                            r.remove(&monitor.name);
                        }
                        drop(permit);
                    });
                }
                while tasks.try_join_next().is_some() {}
                if last_retention.elapsed() > Duration::from_secs(3600) {
                    last_retention = Instant::now();
                    if let Err(e) = db.apply_retention(crate::now_ms(), cfg.settings.retention).await {
                        tracing::warn!(error = %e, "retention failed");
                    }
                }
            }
            changed = config.changed() => {
                if changed.is_err() {
                    break;
                }
                cfg = config.borrow_and_update().clone();
                schedule_all(&cfg, &mut heap, &mut by_name, &mut first, &mut seq);
                first.retain(|n| by_name.contains_key(n));
                close_removed(&db, &cfg).await;
                tracing::info!(monitors = cfg.monitors.len(), "configuration reloaded");
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    // Finish what is in flight: checks (and their records), then the last delivery round.
    while tasks.join_next().await.is_some() {}
    let _ = disp_stop.send(true);
    let _ = disp.await;
    // One summary line, so a run without /metrics still tells how it kept its schedule.
    let q = |p| stats.lateness_quantile(p).unwrap_or(0.0);
    tracing::info!(
        checks = stats.checks.load(Ordering::Relaxed),
        skipped = stats.skipped.load(Ordering::Relaxed),
        record_errors = stats.record_errors.load(Ordering::Relaxed),
        lateness_p50_ms = %format!("{:.1}", q(0.5)),
        lateness_p99_ms = %format!("{:.1}", q(0.99)),
        lateness_max_ms = %format!("{:.1}", q(1.0)),
        "scheduler stopped"
    );
    Ok(())
}
