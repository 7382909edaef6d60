//! The one error type of `opskit-net`: variants a caller can act on.

/// Everything that can go wrong in `opskit-net`.
///
/// Each helper module adds the variants it needs; keep them actionable (say what was wrong and,
/// where it helps, how to fix it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error with what we were doing when it happened.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    // --- echo and transfer (net echo, net send/receive) ---
    /// Could not bind a listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Could not connect to (or reach) a peer.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A network wait ran past its deadline.
    #[error("timed out after {after:?} {what}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
    /// A message is larger than the protocol allows.
    #[error("message of {len} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge { len: usize, max: usize },
    /// The peer broke the protocol (bad magic, bad frame, closed too early).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A file cannot be sent (not a regular file, name not UTF-8, duplicate name).
    #[error("{path}: {reason}")]
    BadFile {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The receiver refused or failed a file and said why (sender side).
    #[error("the receiver refused {file:?}: {message}")]
    Rejected {
        file: String,
        kind: crate::transfer::FailureKind,
        message: String,
    },
    /// This receiver refused or failed a transfer (receiver side); the same text was sent back
    /// to the sender when the connection still allowed it.
    #[error("transfer refused: {message}")]
    Transfer {
        kind: crate::transfer::FailureKind,
        message: String,
    },
}
