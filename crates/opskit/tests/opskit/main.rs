//! Integration tests of the `opskit` binary.

mod basics;
mod http;
mod notify;
mod serve;
mod ssh;
mod net_transfer;
