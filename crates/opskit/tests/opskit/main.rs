//! Integration tests of the `opskit` binary.

mod basics;
mod notify;
mod ssh;
mod http;
mod serve;
