//! Sockets for opskit: TCP port checks and scans, DNS lookups, waiting for services, an echo
//! client/server and a framed, checksummed file transfer.
//!
//! Like every opskit library this crate never prints and never exits: it returns typed results
//! and a typed [`Error`], emits `tracing` events and reports progress through callbacks.

pub mod echo;
mod error;
pub mod raw;
pub mod transfer;

pub mod check;
pub mod dns;
pub mod scan;
pub mod services;
pub mod target;
pub mod wait;

pub use error::Error;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
