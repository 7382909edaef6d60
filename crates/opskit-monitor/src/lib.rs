//! `opskit-monitor`: the engine behind `opskit monitor` (and later `opskit serve`): checks,
//! jq conditions, the alert state machine with its outbox, the scheduler and results storage.
//!
//! It knows nothing of a command line or an HTTP server: the binary parses flags and serves the
//! heartbeat endpoint; this crate reads [`config`], runs [`check`]s, stores results and state,
//! and delivers alerts.

pub mod check;
pub mod condition;
pub mod config;
pub mod definitions;
pub mod deliver;
pub mod engine;
mod error;
pub mod gatus;
pub mod inventory;
pub mod lease;
pub mod maintenance;
pub mod metrics;
pub mod overview;
pub mod query;
pub mod scheduler;
pub mod service;
pub mod status;
pub mod store;

pub use check::{Checker, Report, Status};
pub use config::{Config, Monitor};
pub use error::{Error, Result};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
