//! Tests of opskit-notify: signing and verification, message formats, and delivery to local
//! servers standing in for Slack, Teams, Jira and a webhook receiver.

mod delivery;
mod fixtures;
mod messages;
mod signing;
