//! The one error type of the monitor engine.

/// What went wrong; each variant is something a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is wrong: `path:line: key: what`.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened, migrated, read or written.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The monitor's migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// PostgreSQL's address refused or did not answer (`connection refused to HOST:PORT`).
    #[error("{0}")]
    Unreachable(String),
    /// A write of a process that no longer holds the leader lease was refused (fencing).
    #[error("not the leader: {0}")]
    Fenced(String),
    /// Anything else with a message (a bad Gatus file, a stored row that cannot be read).
    #[error("{0}")]
    Other(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
