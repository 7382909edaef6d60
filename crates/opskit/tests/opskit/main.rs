//! Integration tests of the `opskit` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod basics;
mod digitalocean;
mod github;
mod hostile;
mod http;
mod http_flags;
mod http_many;
mod http_session;
mod jira;
mod monitor;
mod monitor_ha;
mod monitor_inventory;
mod net;
mod net_raw;
mod net_transfer;
mod notify;
mod prom;
mod serve;
mod serve_monitor;
mod ssh;
mod status_browser;
mod support;
mod vault;
