//! `kind = "tcp"`: does `host:port` accept a connection (opskit-net's port check)?

use std::time::Duration;

use opskit_net::check::{CheckState, check_one};
use opskit_net::target::Endpoint;
use serde_json::json;

use super::Raw;

pub(crate) async fn check(target: &str, timeout: Duration) -> Raw {
    let endpoint = match Endpoint::parse(target) {
        Ok(e) => e,
        Err(e) => return Raw::err(json!({"connected": false}), e.to_string()),
    };
    let r = check_one(&endpoint, timeout).await;
    let object = json!({
        "connected": r.state == CheckState::Open,
        "state": r.state.as_str(),
        "address": r.addr.map(|a| a.to_string()),
        "ip": r.addr.map(|a| a.ip().to_string()),
        "response_time_ms": (r.latency_ms * 10.0).round() / 10.0,
    });
    if r.state == CheckState::Open {
        Raw::ok(object)
    } else {
        let why = r.detail.unwrap_or_else(|| r.state.as_str().to_string());
        Raw::err(object, format!("{target}: {} ({why})", r.state.as_str()))
    }
}
