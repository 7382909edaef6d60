//! The running engine, as one value: what `opskit monitor run` and `opskit serve` both start.
//!
//! A [`Service`] holds the configuration file (reloaded on SIGHUP or when its modification time
//! changes), the monitors of other [`MonitorSource`]s (re-read every
//! [`ServiceOptions::refresh`] and on [`Service::refresh_now`]), the heartbeat tokens, and the
//! leader lease ([`crate::lease`]): while this process leads, the [`scheduler`] runs the
//! monitors with the fenced database; otherwise it stands by.
//!
//! The *effective* configuration is the file's (settings, destinations, maintenance windows,
//! monitors) plus every source's monitors:
//!
//! - **Name clashes** are resolved the same way every time: the file wins, then the sources in
//!   the order given in [`ServiceOptions::sources`] (the first source to name a monitor keeps
//!   it). A dropped monitor is reported once ([`ServiceEvent::NameClash`]) while the clash lasts.
//! - **A source that fails** (an error, or no answer within [`SOURCE_DEADLINE`]) keeps
//!   contributing its last good monitors; the failure is reported once
//!   ([`ServiceEvent::SourceFailed`]) and its recovery too ([`ServiceEvent::SourceRecovered`]).
//! - **A bad configuration file** is not applied: the previous one keeps running
//!   ([`ServiceEvent::NotApplied`]).
//!
//! The library never prints: every change is an [`ServiceEvent`] given to the caller's
//! callback, which the binary turns into its stderr lines.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::check::Checker;
use crate::config::{Check, Config, Monitor};
use crate::lease::{self, Elector};
use crate::scheduler::{self, Stats};
use crate::store::Db;
use crate::{Error, Result};

/// How long a source may take to answer before the attempt counts as failed.
pub const SOURCE_DEADLINE: Duration = Duration::from_secs(30);

/// How often the configuration file's modification time is looked at.
const FILE_POLL: Duration = Duration::from_secs(2);

/// How often the leader reads heartbeats stored by other replicas.
const HEARTBEAT_SYNC: Duration = Duration::from_secs(2);

/// The longest lease accepted.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// A source of monitors besides the config file (the API's stored monitors, inventory templates).
pub trait MonitorSource: Send + Sync + 'static {
    /// "api", "inventory", … (shown as a monitor's origin)
    fn origin(&self) -> Origin;
    /// The monitors this source contributes now, given the file's config (destinations,
    /// settings).
    fn monitors<'a>(&'a self, base: &'a Config) -> BoxFuture<'a, Result<Vec<Monitor>>>;
}

/// Where a monitor of the effective configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    File,
    Api,
    Inventory,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Api => "api",
            Origin::Inventory => "inventory",
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to start a [`Service`].
pub struct ServiceOptions {
    /// The database (unfenced; the service fences the leader's writes itself).
    pub db: Db,
    /// The configuration file; without one, the base configuration is empty (default
    /// settings, no destinations) and only the sources' monitors run.
    pub config_path: Option<PathBuf>,
    /// The leader lease (1 s to 1 h); renewed every third of it.
    pub lease: Duration,
    /// This process's identity in the lease (see [`lease::default_holder`]).
    pub holder: String,
    /// Other sources of monitors, in order of precedence after the file.
    pub sources: Vec<Arc<dyn MonitorSource>>,
    /// How often sources are re-read.
    pub refresh: Duration,
}

impl ServiceOptions {
    /// Options with the defaults: no file, the default lease and holder, no sources, a refresh
    /// every 10 s.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            config_path: None,
            lease: lease::DEFAULT_LEASE,
            holder: lease::default_holder(),
            sources: Vec::new(),
            refresh: Duration::from_secs(10),
        }
    }
}

/// What the service reports to its caller.
#[derive(Debug, Clone)]
pub enum ServiceEvent {
    /// The leader election: leading, following, stepped down, the lease unreachable.
    Lease(lease::Event),
    /// This process leads and starts running this many monitors.
    Running { monitors: usize },
    /// The configuration file changed and was applied; `monitors` is the effective count.
    Reloaded { monitors: usize },
    /// The configuration file changed but is invalid: the previous one keeps running.
    NotApplied { error: String },
    /// A source failed; its last good monitors (`kept`) keep running.
    SourceFailed {
        origin: Origin,
        error: String,
        kept: usize,
    },
    /// A source that had failed answers again.
    SourceRecovered { origin: Origin },
    /// Two monitors share a name: the one of `kept` runs, the one of `dropped` does not.
    NameClash {
        name: String,
        kept: Origin,
        dropped: Origin,
    },
}

impl ServiceEvent {
    /// Something an operator should look at: a lost or unreachable lease, a file not applied,
    /// a failing source, a name clash.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            ServiceEvent::Lease(lease::Event::SteppedDown { .. } | lease::Event::Unreachable(_))
                | ServiceEvent::NotApplied { .. }
                | ServiceEvent::SourceFailed { .. }
                | ServiceEvent::NameClash { .. }
        )
    }
}

/// One line, as the binaries print it after their prefix (`opskit monitor: `).
impl std::fmt::Display for ServiceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = match self {
            ServiceEvent::Lease(lease::Event::Leading(l)) => format!(
                "leading (fencing token {}): this instance runs the checks and sends the alerts",
                l.token
            ),
            ServiceEvent::Lease(lease::Event::Following(l)) => format!(
                "following {} (fencing token {}): standing by, taking over if its lease runs out",
                l.holder, l.token
            ),
            ServiceEvent::Lease(lease::Event::SteppedDown { token, why }) => format!(
                "stepped down (fencing token {token}): {why}; this instance no longer checks or alerts"
            ),
            ServiceEvent::Lease(lease::Event::Unreachable(e)) => {
                format!("the leader lease cannot be read or taken: {e}")
            }
            ServiceEvent::Running { monitors } => format!("running {monitors} monitors"),
            ServiceEvent::Reloaded { monitors } => {
                format!("configuration reloaded ({monitors} monitors)")
            }
            ServiceEvent::NotApplied { error } => {
                format!("the new configuration is not applied (the old one keeps running): {error}")
            }
            ServiceEvent::SourceFailed {
                origin,
                error,
                kept,
            } => format!(
                "reading the {origin} monitors failed (its last {kept} monitors keep running): {error}"
            ),
            ServiceEvent::SourceRecovered { origin } => {
                format!("the {origin} monitors can be read again")
            }
            ServiceEvent::NameClash {
                name,
                kept,
                dropped,
            } => format!(
                "two monitors are named {name:?}: the {kept} one runs, the {dropped} one does not (rename one)"
            ),
        };
        f.write_str(&line)
    }
}

type Callback = Arc<dyn Fn(ServiceEvent) + Send + Sync>;
type Outcome = Option<std::result::Result<(), String>>;

struct Inner {
    db: Db,
    checker: Arc<Checker>,
    stats: Arc<Stats>,
    elector: Arc<Elector>,
    config: watch::Sender<Arc<Config>>,
    origins: RwLock<Arc<HashMap<String, Origin>>>,
    tokens: RwLock<Arc<HashSet<String>>>,
    refresh: Notify,
    stop: watch::Sender<bool>,
    done: watch::Receiver<Outcome>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The running engine (cheap to clone; [`Service::stop`] ends it).
#[derive(Clone)]
pub struct Service(Arc<Inner>);

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("holder", &self.0.elector.holder())
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

/// The last good answer of each source, and what was reported about it.
struct SourceState {
    source: Arc<dyn MonitorSource>,
    monitors: Vec<Monitor>,
    fingerprint: u64,
    failing: Option<String>,
}

/// Everything the configuration task keeps between rounds.
struct Merger {
    path: Option<PathBuf>,
    file: Arc<Config>,
    sources: Vec<SourceState>,
    clashes: HashSet<(String, Origin)>,
    on_event: Callback,
}

/// The configuration used without a file: default settings, nothing else.
pub fn empty_config() -> Result<Config> {
    crate::config::parse("(no monitor file)", "")
}

fn fingerprint(monitors: &[Monitor]) -> u64 {
    let mut h = DefaultHasher::new();
    for m in monitors {
        format!("{m:?}").hash(&mut h);
    }
    h.finish()
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn tokens_of(cfg: &Config) -> HashSet<String> {
    cfg.monitors
        .iter()
        .filter_map(|m| match &m.check {
            Check::Heartbeat { token, .. } => Some(token.clone()),
            _ => None,
        })
        .collect()
}

impl Merger {
    /// Reads every source (a failure keeps its last good monitors); `true` when any answer
    /// differs from the last.
    async fn read_sources(&mut self) -> bool {
        let mut changed = false;
        for s in &mut self.sources {
            let origin = s.source.origin();
            let got = tokio::time::timeout(SOURCE_DEADLINE, s.source.monitors(&self.file)).await;
            let got = match got {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} s", SOURCE_DEADLINE.as_secs())),
            };
            match got {
                Ok(monitors) => {
                    if s.failing.take().is_some() {
                        (self.on_event)(ServiceEvent::SourceRecovered { origin });
                    }
                    let fp = fingerprint(&monitors);
                    if fp != s.fingerprint {
                        s.fingerprint = fp;
                        s.monitors = monitors;
                        changed = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(%origin, %error, "reading monitors failed; keeping the last good ones");
                    if s.failing.as_deref() != Some(error.as_str()) {
                        s.failing = Some(error.clone());
                        (self.on_event)(ServiceEvent::SourceFailed {
                            origin,
                            error,
                            kept: s.monitors.len(),
                        });
                    }
                }
            }
        }
        changed
    }

    /// The effective configuration and each monitor's origin: the file first, then each
    /// source in order; a name already taken is dropped (reported once while it lasts).
    fn merge(&mut self) -> (Config, HashMap<String, Origin>) {
        let mut cfg = (*self.file).clone();
        let mut origins: HashMap<String, Origin> = cfg
            .monitors
            .iter()
            .map(|m| (m.name.clone(), Origin::File))
            .collect();
        let mut clashes = HashSet::new();
        for s in &self.sources {
            let origin = s.source.origin();
            for m in &s.monitors {
                if let Some(kept) = origins.get(&m.name) {
                    let key = (m.name.clone(), origin);
                    if !self.clashes.contains(&key) {
                        (self.on_event)(ServiceEvent::NameClash {
                            name: m.name.clone(),
                            kept: *kept,
                            dropped: origin,
                        });
                    }
                    clashes.insert(key);
                    continue;
                }
                origins.insert(m.name.clone(), origin);
                cfg.monitors.push(m.clone());
            }
        }
        self.clashes = clashes;
        (cfg, origins)
    }
}

impl Inner {
    fn publish(&self, cfg: Config, origins: HashMap<String, Origin>) {
        let tokens = tokens_of(&cfg);
        if let Ok(mut t) = self.tokens.write() {
            *t = Arc::new(tokens);
        }
        if let Ok(mut o) = self.origins.write() {
            *o = Arc::new(origins);
        }
        self.config.send_replace(Arc::new(cfg));
    }
}

/// Adds the pings stored in the database (by any replica) to the checker's, newest wins.
async fn merge_heartbeats(db: &Db, checker: &Checker) {
    match db.heartbeats().await {
        Ok(pings) => {
            if let Ok(mut h) = checker.heartbeats().lock() {
                for (token, at) in pings {
                    let e = h.entry(token).or_insert(at);
                    *e = (*e).max(at);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading heartbeats failed"),
    }
}

/// SIGHUP, where there is such a thing; otherwise never.
struct Hangup(Option<tokio::signal::unix::Signal>);

impl Hangup {
    fn new() -> Self {
        Self(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok())
    }
    async fn recv(&mut self) {
        match self.0.as_mut() {
            Some(h) => {
                h.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl Service {
    /// Loads the file, reads the sources once, and starts the election (and, while leading,
    /// the scheduler). A missing or invalid file, or a lease outside 1 s..1 h, is an error;
    /// a failing source is not (it is reported and contributes nothing until it answers).
    pub async fn start(
        opts: ServiceOptions,
        on_event: impl Fn(ServiceEvent) + Send + Sync + 'static,
    ) -> Result<Service> {
        if opts.lease < lease::MIN_LEASE || opts.lease > MAX_LEASE {
            return Err(Error::Config(format!(
                "lease {:?}: give a lease between 1s and 1h",
                opts.lease
            )));
        }
        let on_event: Callback = Arc::new(on_event);
        let file = match &opts.config_path {
            Some(p) => crate::config::load(p)?,
            None => empty_config()?,
        };
        let mut merger = Merger {
            path: opts.config_path.clone(),
            file: Arc::new(file),
            sources: opts
                .sources
                .iter()
                .map(|s| SourceState {
                    source: s.clone(),
                    monitors: Vec::new(),
                    fingerprint: fingerprint(&[]),
                    failing: None,
                })
                .collect(),
            clashes: HashSet::new(),
            on_event: on_event.clone(),
        };
        merger.read_sources().await;
        let (cfg, origins) = merger.merge();

        let db = opts.db.clone();
        let checker = Arc::new(Checker::default());
        merge_heartbeats(&db, &checker).await;
        let stats = Arc::new(Stats::default());
        if let Err(e) = stats.monitors.seed_from(&db).await {
            tracing::warn!(error = %e, "reading the monitors' state for /metrics failed");
        }
        let elector = Arc::new(Elector::new(db.clone(), opts.holder.clone(), opts.lease));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel::<Outcome>(None);
        let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg.clone()));
        let inner = Arc::new(Inner {
            db: db.clone(),
            checker: checker.clone(),
            stats: stats.clone(),
            elector: elector.clone(),
            config: cfg_tx,
            origins: RwLock::new(Arc::default()),
            tokens: RwLock::new(Arc::default()),
            refresh: Notify::new(),
            stop: stop_tx,
            done: done_rx,
            tasks: Mutex::new(Vec::new()),
        });
        inner.publish(cfg, origins);

        let reload = tokio::spawn(reload_loop(
            inner.clone(),
            merger,
            opts.refresh.max(Duration::from_millis(100)),
            stop_rx.clone(),
        ));

        // One leader among the processes sharing the database runs checks and delivers
        // alerts; the others keep the configuration current and take over when its lease runs
        // out.
        let leader = {
            let on_event = on_event.clone();
            let events = on_event.clone();
            tokio::spawn(async move {
                let r = lease::lead(
                    elector,
                    stop_rx,
                    move |e| events(ServiceEvent::Lease(e)),
                    move |fenced: Db, stop| {
                        let (checker, cfg_rx, stats) =
                            (checker.clone(), cfg_rx.clone(), stats.clone());
                        on_event(ServiceEvent::Running {
                            monitors: cfg_rx.borrow().monitors.len(),
                        });
                        async move {
                            // Heartbeats pushed to any replica are in the database: the
                            // leader reads them on taking over, then every few seconds.
                            let sync = async {
                                loop {
                                    merge_heartbeats(&fenced, &checker).await;
                                    tokio::time::sleep(HEARTBEAT_SYNC).await;
                                }
                            };
                            tokio::select! {
                                r = scheduler::run(fenced.clone(), checker.clone(), cfg_rx, stop, stats) => r,
                                () = sync => Ok(()),
                            }
                        }
                    },
                )
                .await;
                let _ = done_tx.send(Some(r.map_err(|e| e.to_string())));
            })
        };
        if let Ok(mut t) = inner.tasks.lock() {
            t.push(reload);
            t.push(leader);
        }
        Ok(Service(inner))
    }

    /// The database, unfenced: for reads (status, queries) and the caller's own tables.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// The effective configuration: the file's plus every source's monitors, names unique.
    pub fn config(&self) -> Arc<Config> {
        self.0.config.borrow().clone()
    }

    /// Follows the effective configuration as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.0.config.subscribe()
    }

    /// Where the monitor named `monitor` comes from, when it is in the effective configuration.
    pub fn origin_of(&self, monitor: &str) -> Option<Origin> {
        self.0
            .origins
            .read()
            .ok()
            .and_then(|o| o.get(monitor).copied())
    }

    /// Re-reads the sources now (after a write through the API); returns at once.
    pub fn refresh_now(&self) {
        self.0.refresh.notify_one();
    }

    /// Records a heartbeat ping: `false` when no monitor has this token. The ping is stored in
    /// the database, so the leader sees it whichever replica received it.
    pub async fn heartbeat(&self, token: &str) -> Result<bool> {
        let known = self
            .0
            .tokens
            .read()
            .map(|t| t.contains(token))
            .unwrap_or(false);
        if !known {
            return Ok(false);
        }
        self.0.checker.ping(token);
        self.0.db.store_heartbeat(token, crate::now_ms()).await?;
        Ok(true)
    }

    /// The scheduler's counters (for `/metrics`).
    pub fn stats(&self) -> Arc<Stats> {
        self.0.stats.clone()
    }

    /// `GET /metrics` in the Prometheus text format ([`crate::metrics::render`]), rendered off
    /// the reactor (sorting the lateness sample takes a while with many monitors).
    pub async fn render_metrics(&self) -> String {
        let (cfg, stats) = (self.config(), self.stats());
        let mut text = tokio::task::spawn_blocking(move || crate::metrics::render(&cfg, &stats))
            .await
            .unwrap_or_default();
        text.push_str(
            "# HELP opskit_monitor_leader 1 while this process holds the leader lease (runs the checks and sends the alerts), else 0.\n\
             # TYPE opskit_monitor_leader gauge\n",
        );
        text.push_str(&format!(
            "opskit_monitor_leader {}\n",
            u8::from(self.is_leader())
        ));
        text
    }

    /// Does this process hold the leader lease now?
    pub fn is_leader(&self) -> bool {
        self.0.elector.fence().token().is_some()
    }

    /// This process's identity in the lease.
    pub fn holder(&self) -> &str {
        self.0.elector.holder()
    }

    /// The lease duration.
    pub fn lease(&self) -> Duration {
        self.0.elector.duration()
    }

    /// Completes when the engine has ended: after [`Service::stop`], or by itself on an error
    /// (then [`Service::stop`] returns that error).
    pub async fn finished(&self) {
        let mut done = self.0.done.clone();
        let _ = done.wait_for(Option::is_some).await;
    }

    /// Finishes the checks and deliveries in flight, releases the lease and stops; the
    /// database stays open (it is the caller's). Returns the error that ended the engine, if
    /// one did.
    pub async fn stop(self) -> Result<()> {
        let _ = self.0.stop.send(true);
        let mut done = self.0.done.clone();
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map(|o| o.clone())
            .ok()
            .flatten();
        let tasks = self
            .0
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        match outcome {
            Some(Err(e)) => Err(Error::Other(e)),
            _ => Ok(()),
        }
    }
}

/// Reloads the file (SIGHUP or a new modification time) and re-reads the sources (every
/// `refresh`, or at once on [`Service::refresh_now`]) until `stop`.
async fn reload_loop(
    inner: Arc<Inner>,
    mut merger: Merger,
    refresh: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut hup = Hangup::new();
    let mut seen = merger.path.as_deref().and_then(mtime);
    let mut next_poll = Instant::now() + FILE_POLL;
    let mut next_refresh = Instant::now() + refresh;
    loop {
        let mut file_changed = false;
        let mut forced = false;
        tokio::select! {
            () = hup.recv() => file_changed = merger.path.is_some(),
            () = tokio::time::sleep_until(next_poll) => {
                next_poll = Instant::now() + FILE_POLL;
                if let Some(p) = &merger.path {
                    let now = mtime(p);
                    if now != seen {
                        seen = now;
                        file_changed = true;
                    }
                }
                if !file_changed {
                    continue;
                }
            }
            () = tokio::time::sleep_until(next_refresh) => {}
            () = inner.refresh.notified() => forced = true,
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if file_changed {
            seen = merger.path.as_deref().and_then(mtime);
            let Some(path) = merger.path.clone() else {
                continue;
            };
            match crate::config::load(&path) {
                Ok(c) => merger.file = Arc::new(c),
                Err(e) => {
                    (merger.on_event)(ServiceEvent::NotApplied {
                        error: e.to_string(),
                    });
                    continue;
                }
            }
        }
        next_refresh = Instant::now() + refresh;
        let sources_changed = merger.read_sources().await;
        if file_changed || sources_changed || forced {
            let (cfg, origins) = merger.merge();
            let n = cfg.monitors.len();
            inner.publish(cfg, origins);
            if file_changed {
                (merger.on_event)(ServiceEvent::Reloaded { monitors: n });
            } else {
                tracing::debug!(monitors = n, "monitors from the sources changed");
            }
        }
    }
}
