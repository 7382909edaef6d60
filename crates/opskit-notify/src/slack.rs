//! Slack incoming-webhook messages: a fallback `text` plus one attachment coloured by severity,
//! with fields, footer and timestamp (the shape of the seeds' `send_slack_alert`).
//!
//! Reference: <https://api.slack.com/reference/messaging/attachments> (`fallback`, `color`,
//! `title`, `text`, `fields[].title/value/short`, `footer`, `ts`).

use serde_json::{Value, json};

use crate::alert::Alert;

/// The JSON body to POST to a Slack incoming webhook.
pub fn payload(alert: &Alert) -> Value {
    let headline = alert.headline();
    let fields: Vec<Value> = alert
        .all_fields()
        .into_iter()
        .map(|(title, value)| {
            // Short values sit two to a row, as in the seeds.
            let short = value.chars().count() <= 40;
            json!({ "title": title, "value": value, "short": short })
        })
        .collect();
    json!({
        "text": headline,
        "attachments": [{
            "fallback": format!("{headline}: {}", alert.message),
            "color": alert.severity.color(),
            "title": headline,
            "text": alert.message,
            "fields": fields,
            "footer": alert.footer,
            "ts": alert.time.unix_timestamp(),
        }]
    })
}
