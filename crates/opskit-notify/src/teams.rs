//! Microsoft Teams messages: an Adaptive Card for Workflows webhooks (the current way), or a
//! MessageCard for legacy Office 365 connectors (the seeds' way).
//!
//! References: "Send Adaptive Cards using an Incoming Webhook / Workflows" — the body is
//! `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//! "content":{AdaptiveCard}}]}`; Adaptive Card schema 1.4 (TextBlock, FactSet, Container with
//! `style`); and the legacy "MessageCard" format (`@type`, `@context`, `summary`, `themeColor`,
//! `title`, `text`, `sections[].facts[].name/value`).

use serde_json::{Value, json};

use crate::alert::Alert;

/// Which card format to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CardFormat {
    /// Adaptive Card 1.4 wrapped in a `message` (Teams Workflows webhooks).
    #[default]
    Adaptive,
    /// Legacy connector MessageCard.
    MessageCard,
}

/// The JSON body for `format`.
pub fn payload(alert: &Alert, format: CardFormat) -> Value {
    match format {
        CardFormat::Adaptive => adaptive_card_message(alert),
        CardFormat::MessageCard => message_card(alert),
    }
}

/// The Adaptive Card alone (the `content` of the attachment).
pub fn adaptive_card(alert: &Alert) -> Value {
    let style = alert.severity.adaptive_style();
    let facts: Vec<Value> = alert
        .all_fields()
        .into_iter()
        .map(|(title, value)| json!({ "title": title, "value": value }))
        .collect();
    let mut body = vec![
        json!({
            "type": "Container",
            "style": style,
            "bleed": true,
            "items": [{
                "type": "TextBlock",
                "text": alert.headline(),
                "weight": "Bolder",
                "size": "Medium",
                "color": style,
                "wrap": true,
            }],
        }),
        json!({ "type": "TextBlock", "text": alert.message, "wrap": true }),
    ];
    if !facts.is_empty() {
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    body.push(json!({
        "type": "TextBlock",
        "text": format!("{} · {}", alert.footer, alert.time_rfc3339()),
        "isSubtle": true,
        "size": "Small",
        "wrap": true,
    }));
    json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "fallbackText": format!("{}: {}", alert.headline(), alert.message),
        "body": body,
        "msteams": { "width": "Full" },
    })
}

fn adaptive_card_message(alert: &Alert) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": adaptive_card(alert),
        }]
    })
}

fn message_card(alert: &Alert) -> Value {
    let mut facts: Vec<Value> = alert
        .all_fields()
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    facts.push(json!({ "name": "Time", "value": alert.time_rfc3339() }));
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": alert.headline(),
        "themeColor": alert.severity.color().trim_start_matches('#'),
        "title": alert.headline(),
        "text": alert.message,
        "sections": [{
            "activitySubtitle": alert.footer,
            "facts": facts,
        }],
    })
}
