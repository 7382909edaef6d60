//! `kind = "dns"`: a lookup of one record type, through a given server or the system resolver.

use std::time::Duration;

use opskit_net::dns::{DnsOptions, RecordKind, lookup};
use serde_json::json;

use super::Raw;
use crate::config::DnsCheck;

pub(crate) async fn check(d: &DnsCheck, timeout: Duration) -> Raw {
    let kind: RecordKind = match d.record_type.parse() {
        Ok(k) => k,
        Err(e) => return Raw::err(json!({}), e.to_string()),
    };
    let opts = DnsOptions {
        server: d.server,
        timeout,
    };
    match lookup(&d.name, kind, &opts).await {
        Ok(records) => {
            let answers: Vec<&str> = records.iter().map(|r| r.value.as_str()).collect();
            Raw::ok(json!({
                "answers": answers,
                "records": records,
                // A lookup that answers is NOERROR; NXDOMAIN and empty answers stop the check.
                "rcode": "NOERROR",
            }))
        }
        Err(e) => Raw::err(
            json!({"answers": []}),
            format!("{} {}: {e}", d.record_type, d.name),
        ),
    }
}
