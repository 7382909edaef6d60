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
    /// A target, host, CIDR block or port SPEC that cannot be parsed (the message says how to fix it).
    #[error("{0}")]
    InvalidInput(String),
    /// A CIDR block (or the hosts of a scan together) holds more addresses than allowed.
    #[error(
        "{what} holds {count} addresses, more than the cap of {cap}; scan a smaller block or raise --max-hosts"
    )]
    TooManyHosts {
        what: String,
        count: u128,
        cap: usize,
    },
    /// A name did not resolve to any address.
    #[error("cannot resolve {name}: {reason}")]
    Resolve { name: String, reason: String },
    /// A DNS query failed (server error, refused, bad answer).
    #[error("DNS {record_type} query for {name} failed: {reason}")]
    Dns {
        name: String,
        record_type: String,
        reason: String,
    },
    /// The name exists nowhere or has no records of the asked type.
    #[error("no {record_type} records for {name}")]
    DnsNoRecords { name: String, record_type: String },
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
    /// An operation ran past its deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },
    /// The process kept running out of file descriptors (or local ports) and the scan could not
    /// go on; nothing was counted closed because of it.
    #[error("out of file descriptors or local ports for {waited:?} while probing {addr}: {source}")]
    ResourcesExhausted {
        addr: std::net::SocketAddr,
        waited: std::time::Duration,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for `wait` could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] opskit_http::Error),
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
    // --- raw sockets (net connect / listen) ---
    /// Connecting (name resolution included) did not finish before the deadline.
    #[error("connecting to {target} timed out after {after:?}")]
    ConnectTimeout {
        target: String,
        after: std::time::Duration,
    },
    /// No connection or datagram came before the deadline of a listener.
    #[error("nothing connected to {local} within {after:?}")]
    AcceptTimeout {
        local: String,
        after: std::time::Duration,
    },
    /// No byte moved either way for the idle timeout: the connection was closed.
    #[error("no data either way for {after:?}: closed the connection with {peer}")]
    Idle {
        peer: String,
        after: std::time::Duration,
    },
    /// Could not connect to a Unix socket.
    #[error("cannot connect to unix socket {path}: {source}")]
    ConnectUnix {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Unix socket path that cannot be listened on (a live listener holds it, it is not a
    /// socket, …); `reason` says which and what to do.
    #[error("cannot listen on unix socket {path}: {reason}")]
    BindUnix {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The connection broke while bytes were moving (reset by the peer, …).
    #[error(
        "the connection with {peer} broke after {sent} bytes sent and {received} received: {source}"
    )]
    Broken {
        peer: String,
        sent: u64,
        received: u64,
        #[source]
        source: std::io::Error,
    },
}
