//! `opskit-apis`: typed clients for the APIs operations people script against, each one module
//! built on the [`opskit_http`] engine (timeouts, retries, rate limits, paging, cache): no second
//! HTTP stack.
//!
//! - [`digitalocean`]: the DigitalOcean API v2: droplets (every page), power actions and
//!   snapshots, an action polled until it completes or errors within a deadline.
//! - [`github`]: the GitHub REST API: issues (pull requests told apart), repositories, any
//!   endpoint with every `Link` page, issue creation that is safe to retry, rate-limit errors
//!   that say when the quota resets.
//! - [`jira`]: Jira Cloud (REST v3, ADF) and Data Center (REST v2, a personal access token):
//!   issues created (safe to retry), read, searched (every page), commented and transitioned by
//!   name, on the wire format `opskit notify jira` uses.
//! - [`prometheus`]: the Prometheus HTTP API (`/api/v1`): instant and range queries, alerts,
//!   rules, targets, series and labels, with Prometheus' own error document as a typed error.
//! - [`vault`]: HashiCorp Vault's KV secrets engine (v1 and v2, told apart by the mount), and
//!   the reader of `vault:MOUNT/PATH#FIELD` secrets that [`opskit_http`] uses.
//!
//! Libraries never print: every call returns typed values or one [`Error`].

pub mod digitalocean;
mod error;
pub mod github;
pub mod jira;
pub mod prometheus;
pub mod time_arg;
pub mod vault;

pub use error::Error;
