//! Tests of opskit-notify: signing and verification, message formats, and delivery to local
//! servers standing in for Slack, Teams, Jira and a webhook receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod delivery;
mod fixtures;
mod messages;
mod signing;
