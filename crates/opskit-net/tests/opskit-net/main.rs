//! Integration tests of opskit-net: real sockets on loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

mod check;
mod dns;
mod echo;
mod scan;
mod transfer;
mod wait;
