//! Integration tests of the `opskit` binary.

mod basics;
mod hostile;
mod http;
mod monitor;
mod net;
mod net_transfer;
mod notify;
mod serve;
mod ssh;
