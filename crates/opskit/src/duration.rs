//! The one duration syntax of every flag of every command lives in opskit-http
//! ([`opskit_http::duration`]), shared with the monitor's configuration; clap flags use
//! [`parse_duration`] (or [`zero_or_duration`] where 0 means "off"/"no slack").

pub use opskit_http::duration::{parse_duration, zero_or_duration};
