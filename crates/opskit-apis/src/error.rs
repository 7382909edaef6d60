//! The one error type of this crate.

use std::time::SystemTime;

/// Everything a typed API call can fail with. Match on the variant to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine failed: connection, TLS, timeout, or a status the API did not explain with
    /// its own error document.
    #[error(transparent)]
    Http(#[from] opskit_http::Error),
    /// The API answered with its own error document (Prometheus `errorType`/`error`, GitHub
    /// `message`).
    #[error("{api} {kind} (HTTP {status}): {message}")]
    Api {
        /// Which API (`Prometheus`, `GitHub`).
        api: &'static str,
        /// The HTTP status.
        status: u16,
        /// The API's error kind (`bad_data`, `execution`, …; for GitHub the status' reason).
        kind: String,
        /// What the API said.
        message: String,
        /// Further details (GitHub's `errors[]`), one line each.
        details: Vec<String>,
    },
    /// The API's request quota is used up.
    #[error("{api} rate limit used up{}", resets_text(*.resets_at))]
    RateLimited {
        /// Which API.
        api: &'static str,
        /// When the quota resets, if the API said.
        resets_at: Option<SystemTime>,
        /// What the API said.
        message: String,
    },
    /// The answer was not the document the API documents.
    #[error("cannot decode the answer of {url}: {message}")]
    Decode {
        /// The URL (secrets redacted).
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The caller's input cannot be sent (a bad time, repository name, …).
    #[error("{0}")]
    InvalidInput(String),
    /// A long-running operation the API ran (a DigitalOcean action) ended in failure.
    #[error("{api} {what} {message}")]
    OperationFailed {
        /// Which API.
        api: &'static str,
        /// What failed (`action 7 (reboot) on droplet 3`).
        what: String,
        /// How it ended.
        message: String,
    },
    /// Waiting for an operation ran past its deadline (the operation itself may still finish).
    #[error("{what} did not finish within {}s (last status: {last})", .after.as_secs())]
    WaitTimedOut {
        /// What was waited for.
        what: String,
        /// The deadline.
        after: std::time::Duration,
        /// The last status read.
        last: String,
    },
}

impl Error {
    /// The HTTP status behind the error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }
}

/// ` (resets at 2026-11-30T15:00:00Z, in 12m 5s)`, or nothing.
fn resets_text(at: Option<SystemTime>) -> String {
    let Some(at) = at else {
        return String::new();
    };
    let when = time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    format!("; it resets at {when} (in {}m {}s)", left / 60, left % 60)
}
