//! The alert every chat destination renders: severity, title, message, fields, host, time.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Error;

/// How bad it is. The colours are the seeds' (`send_slack_alert`'s `color_map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Critical,
    Warning,
    Info,
    Resolved,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Warning,
        Severity::Info,
        Severity::Resolved,
    ];

    /// `#RRGGBB`, as in the seeds: red, orange, green, blue.
    pub fn color(self) -> &'static str {
        match self {
            Severity::Critical => "#FF0000",
            Severity::Warning => "#FFA500",
            Severity::Info => "#36A64F",
            Severity::Resolved => "#439FE0",
        }
    }

    /// Lower-case name, as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Resolved => "resolved",
        }
    }

    /// The Adaptive Card colour/style closest to the seeds' colour.
    pub(crate) fn adaptive_style(self) -> &'static str {
        match self {
            Severity::Critical => "attention",
            Severity::Warning => "warning",
            Severity::Info => "accent",
            Severity::Resolved => "good",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown severity {s:?}; use critical, warning, info or resolved"
                ))
            })
    }
}

/// One alert, rendered by [`crate::slack`] and [`crate::teams`].
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// Ordered `(name, value)` pairs.
    pub fields: Vec<(String, String)>,
    /// The host the alert is about; shown as the first field.
    pub host: Option<String>,
    /// Footer text (who sent it).
    pub footer: String,
    /// When it happened.
    pub time: OffsetDateTime,
}

impl Alert {
    /// An alert stamped now, with the footer `opskit`.
    pub fn new(severity: Severity, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            title: title.into(),
            message: message.into(),
            fields: Vec::new(),
            host: None,
            footer: "opskit".to_owned(),
            time: OffsetDateTime::now_utc(),
        }
    }

    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// `[CRITICAL] title`.
    pub fn headline(&self) -> String {
        format!(
            "[{}] {}",
            self.severity.as_str().to_ascii_uppercase(),
            self.title
        )
    }

    /// The host first (as `Host`), then the fields in order.
    pub fn all_fields(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(self.fields.len() + 1);
        if let Some(host) = &self.host {
            out.push(("Host".to_owned(), host.clone()));
        }
        out.extend(self.fields.iter().cloned());
        out
    }

    /// The time as RFC 3339 (UTC).
    pub fn time_rfc3339(&self) -> String {
        self.time
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.time.unix_timestamp().to_string())
    }

    /// Checks what every destination needs: a title and a message.
    pub fn validate(&self) -> Result<(), Error> {
        if self.title.trim().is_empty() {
            return Err(Error::InvalidInput("the title is empty".into()));
        }
        if self.message.trim().is_empty() {
            return Err(Error::InvalidInput("the message is empty".into()));
        }
        for (name, _) in &self.fields {
            if name.trim().is_empty() {
                return Err(Error::InvalidInput("a field has an empty name".into()));
            }
        }
        Ok(())
    }
}

/// The current time as RFC 3339 (UTC), as alerts show it.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| OffsetDateTime::now_utc().unix_timestamp().to_string())
}

/// Parses `key=value` (as given to `--field`).
pub fn parse_field(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(Error::InvalidInput(format!(
            "field {text:?} is not `name=value`"
        ))),
    }
}
