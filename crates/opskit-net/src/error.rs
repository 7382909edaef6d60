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
}
