//! Integration tests of opskit-http against a local axum fixture server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod fixture;
mod support;

mod auth;
mod cache;
mod errors;
mod hostile;
mod pagination;
mod proxy;
mod ratelimit;
mod retry;
mod timeouts;
mod tls;
mod transfer;
