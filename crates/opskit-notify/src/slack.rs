//! Slack incoming-webhook messages: a fallback `text` plus one attachment coloured by severity,
//! with fields, footer and timestamp (the shape of the seeds' `send_slack_alert`).
//!
//! Reference: <https://api.slack.com/reference/messaging/attachments> (`fallback`, `color`,
//! `title`, `text`, `fields[].title/value/short`, `footer`, `ts`).
//!
//! Or a plain `text` message without an attachment ([`Message::Text`]), and the seeds' basic
//! webhook fields `channel`, `username`, `icon_emoji` ([`Overrides`]) on either.

use serde_json::{Value, json};

use crate::Error;
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

/// What a legacy incoming webhook lets a message override: the seeds' `send_slack_webhook`
/// fields `channel`, `username` and `icon_emoji`. Webhooks of a Slack app post to the channel
/// chosen when the app was installed and may ignore them; legacy webhooks honour them.
///
/// Reference: <https://api.slack.com/legacy/custom-integrations/messaging/webhooks>.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `#channel`, `@user` or a channel id.
    pub channel: Option<String>,
    /// The name the message is posted as.
    pub username: Option<String>,
    /// An emoji code used as the avatar, `:robot_face:` (the colons are added when missing).
    pub icon_emoji: Option<String>,
}

/// The longest channel name, user name or emoji code accepted (Slack's own limits are lower).
const MAX_OVERRIDE: usize = 80;

impl Overrides {
    /// Checks every value and returns them as Slack wants them (an emoji code in colons).
    pub fn normalized(&self) -> Result<Overrides, Error> {
        let check = |what: &str, v: &str, spaces: bool| -> Result<String, Error> {
            let t = v.trim();
            if t.is_empty() {
                return Err(Error::InvalidInput(format!("the {what} is empty")));
            }
            if t.chars().count() > MAX_OVERRIDE {
                return Err(Error::InvalidInput(format!(
                    "the {what} is longer than {MAX_OVERRIDE} characters"
                )));
            }
            if t.chars().any(char::is_control) || (!spaces && t.chars().any(char::is_whitespace)) {
                return Err(Error::InvalidInput(format!(
                    "the {what} {t:?} holds a space or a control character"
                )));
            }
            Ok(t.to_owned())
        };
        let channel = self
            .channel
            .as_deref()
            .map(|c| check("channel", c, false))
            .transpose()?;
        let username = self
            .username
            .as_deref()
            .map(|u| check("username", u, true))
            .transpose()?;
        let icon_emoji = match self.icon_emoji.as_deref() {
            None => None,
            Some(e) => {
                let e = check("icon emoji", e, false)?;
                let name = e.strip_prefix(':').unwrap_or(&e);
                let name = name.strip_suffix(':').unwrap_or(name);
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '\''));
                if !valid {
                    return Err(Error::InvalidInput(format!(
                        "the icon emoji {e:?} is not an emoji code such as :robot_face:"
                    )));
                }
                Some(format!(":{name}:"))
            }
        };
        Ok(Overrides {
            channel,
            username,
            icon_emoji,
        })
    }

    fn apply(&self, body: &mut Value) {
        if let Some(map) = body.as_object_mut() {
            for (key, value) in [
                ("channel", &self.channel),
                ("username", &self.username),
                ("icon_emoji", &self.icon_emoji),
            ] {
                if let Some(v) = value {
                    map.insert(key.into(), Value::String(v.clone()));
                }
            }
        }
    }
}

/// One Slack message: an alert (an attachment coloured by severity) or plain text.
#[derive(Debug, Clone)]
pub enum Message {
    /// [`payload`]'s attachment.
    Alert(Alert),
    /// `{"text": …}` and nothing else: Slack formats it as mrkdwn (`*bold*`, `<url|link>`).
    Text(String),
}

/// The longest plain text accepted: Slack truncates a message's `text` after 40,000 characters.
pub const MAX_TEXT: usize = 40_000;

impl Message {
    /// Checks the message (an empty text or title, an empty field name, an over-long text).
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Message::Alert(a) => a.validate(),
            Message::Text(t) if t.trim().is_empty() => {
                Err(Error::InvalidInput("the text is empty".into()))
            }
            Message::Text(t) if t.chars().count() > MAX_TEXT => Err(Error::InvalidInput(format!(
                "the text is longer than {MAX_TEXT} characters (Slack would cut it)"
            ))),
            Message::Text(_) => Ok(()),
        }
    }
}

/// The JSON body of `message` with the `overrides` (already [`Overrides::normalized`]).
pub fn message_payload(message: &Message, overrides: &Overrides) -> Value {
    let mut body = match message {
        Message::Alert(a) => payload(a),
        Message::Text(t) => json!({ "text": t }),
    };
    overrides.apply(&mut body);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_basic_webhook_payload() {
        let o = Overrides {
            channel: Some("#ops".into()),
            username: Some("Python Bot".into()),
            icon_emoji: Some("robot_face".into()),
        }
        .normalized()
        .unwrap();
        let body = message_payload(&Message::Text(":warning: web01 is down!".into()), &o);
        assert_eq!(
            body,
            json!({
                "text": ":warning: web01 is down!",
                "channel": "#ops",
                "username": "Python Bot",
                "icon_emoji": ":robot_face:",
            })
        );
    }

    #[test]
    fn bad_overrides_and_texts_are_refused() {
        let bad = |o: Overrides| o.normalized().unwrap_err().to_string();
        assert!(
            bad(Overrides {
                channel: Some("#two words".into()),
                ..Overrides::default()
            })
            .contains("space")
        );
        assert!(
            bad(Overrides {
                icon_emoji: Some(":not an emoji:".into()),
                ..Overrides::default()
            })
            .contains("emoji")
        );
        assert!(
            bad(Overrides {
                username: Some(" ".into()),
                ..Overrides::default()
            })
            .contains("empty")
        );
        assert!(Message::Text("  ".into()).validate().is_err());
        assert!(Message::Text("x".repeat(MAX_TEXT + 1)).validate().is_err());
    }
}
