//! The one error type of this crate.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// How many bytes of a response body an [`Error::Status`] keeps.
pub const BODY_EXCERPT_LIMIT: usize = 2048;

/// Which phase of a request ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Opening the TCP connection (and the TLS handshake).
    Connect,
    /// The whole request: sending it, the response headers and, for buffered reads, the body.
    Request,
    /// A streamed body sent no data for longer than the read-idle timeout.
    ReadIdle,
    /// The overall retry deadline passed before the next attempt could start.
    RetryDeadline,
    /// A secret command or token endpoint did not answer in time.
    Auth,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::Request => "request",
            TimeoutPhase::ReadIdle => "read-idle",
            TimeoutPhase::RetryDeadline => "retry deadline",
            TimeoutPhase::Auth => "auth",
        })
    }
}

/// A non-success HTTP status, with what the server said.
#[derive(Debug, Clone)]
pub struct StatusError {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The first [`BODY_EXCERPT_LIMIT`] bytes of the body, lossily decoded as UTF-8.
    pub body_excerpt: String,
    /// The URL that answered (secrets in the query redacted).
    pub url: String,
}

/// Everything that can go wrong in `opskit-http`. Match on the variant to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A deadline passed; `phase` says which one.
    #[error("{phase} timeout after {after:?} for {url}")]
    Timeout {
        /// The phase that timed out.
        phase: TimeoutPhase,
        /// The deadline that was exceeded.
        after: Duration,
        /// The URL (secrets redacted).
        url: String,
    },
    /// The TCP connection could not be opened (refused, unreachable, DNS failure, proxy).
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL (secrets redacted).
        url: String,
        /// What the operating system or resolver said.
        message: String,
    },
    /// The TLS handshake failed (unknown CA, bad certificate, version too old).
    #[error("TLS handshake with {url} failed: {message}")]
    Tls {
        /// The URL (secrets redacted).
        url: String,
        /// What rustls said.
        message: String,
    },
    /// The connection broke while sending the request or reading the response.
    #[error("transport error talking to {url}: {message}")]
    Transport {
        /// The URL (secrets redacted).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with a status the caller treats as an error
    /// (see [`crate::Response::error_for_status`]).
    #[error("HTTP {} from {}: {}", .0.status, .0.url, .0.body_excerpt)]
    Status(Box<StatusError>),
    /// Retries were attempted and all failed; `last` is the final failure.
    #[error("gave up after {attempts} {}: {last}", if *.attempts == 1 { "attempt" } else { "attempts" })]
    RetriesExhausted {
        /// How many attempts were made in total (first try included).
        attempts: u32,
        /// The error of the last attempt.
        last: Box<Error>,
    },
    /// A retry was needed but the request body is a one-shot stream.
    #[error(
        "cannot retry {method} {url}: the request body is a stream that cannot be replayed; \
         buffer it (`.body(bytes)`) or send a file (`.body_file(path)`)"
    )]
    BodyNotReplayable {
        /// The method.
        method: String,
        /// The URL (secrets redacted).
        url: String,
    },
    /// The body could not be decoded (bad JSON, wrong shape).
    #[error("cannot decode the response from {url}: {message}")]
    Decode {
        /// The URL (secrets redacted).
        url: String,
        /// What was wrong.
        message: String,
    },
    /// Credentials could not be obtained or were refused.
    #[error("authentication failed: {message}")]
    Auth {
        /// What went wrong (never contains the secret).
        message: String,
    },
    /// A configuration value is wrong (bad URL, header, certificate file, quota).
    #[error("invalid configuration: {message}")]
    Config {
        /// What was wrong and how to fix it.
        message: String,
    },
    /// A request could not be built (bad URL or path, bad header, unserialisable body).
    #[error("invalid request: {message}")]
    Usage {
        /// What was wrong and how to fix it.
        message: String,
    },
    /// A redirect could not be followed: a loop, too many hops, a bad `Location` or a scheme
    /// other than http/https. Never retried (the same request would redirect the same way).
    #[error("redirect from {url} not followed: {message}")]
    Redirect {
        /// The URL that answered with the redirect (secrets redacted).
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A body that had to be held whole in memory was larger than the configured cap
    /// ([`crate::ClientConfig::max_body`]). Stream it instead, or raise the cap.
    #[error("the response body from {url} is larger than the {limit}-byte cap")]
    BodyTooLarge {
        /// The URL (secrets redacted).
        url: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// Pagination went wrong (cross-origin next link, missing items array).
    #[error("pagination stopped: {message}")]
    Pagination {
        /// What was wrong.
        message: String,
    },
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status, if this is (or ended with) a status error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status(s) => Some(s.status),
            Error::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether a deadline was the cause (directly or of the last retry).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::RetriesExhausted { last, .. } => last.is_timeout(),
            _ => false,
        }
    }

    /// Whether the failure was reaching the server (connect, TLS, timeout, transport),
    /// directly or as the last retry.
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Timeout { .. }
            | Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Transport { .. } => true,
            Error::RetriesExhausted { last, .. } => last.is_connection(),
            _ => false,
        }
    }

    /// The error behind a [`Error::RetriesExhausted`], or `self`.
    pub fn root(&self) -> &Error {
        match self {
            Error::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
        }
    }

    pub(crate) fn auth(message: impl Into<String>) -> Self {
        Error::Auth {
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Classify a reqwest error (from `send` or from reading the body).
    pub(crate) fn from_reqwest(err: reqwest::Error, url: &str, timeouts: &crate::Timeouts) -> Self {
        // reqwest puts the full URL in its message; `url` is the redacted form we show instead.
        let err = err.without_url();
        let message = chain_message(&err);
        if is_tls(&err) {
            return Error::Tls {
                url: url.to_string(),
                message,
            };
        }
        if err.is_connect() {
            if err.is_timeout() || message.contains("timed out") {
                return Error::Timeout {
                    phase: TimeoutPhase::Connect,
                    after: timeouts.connect,
                    url: url.to_string(),
                };
            }
            return Error::Connect {
                url: url.to_string(),
                message,
            };
        }
        if err.is_timeout() {
            return Error::Timeout {
                phase: TimeoutPhase::Request,
                after: timeouts.request,
                url: url.to_string(),
            };
        }
        if err.is_builder() {
            return Error::Usage { message };
        }
        Error::Transport {
            url: url.to_string(),
            message,
        }
    }
}

/// The messages of an error and all its sources, joined with ": ".
fn chain_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && (inner.downcast_ref::<rustls::Error>().is_some() || is_tls(inner))
        {
            return true;
        }
        cur = e.source();
    }
    false
}
