//! The crate error: everything that can go wrong outside a request (a request's errors are
//! [`crate::problem::AppError`]).

/// Everything that can go wrong outside a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database could not be reached or refused the login; the text names `HOST:PORT`
    /// and never the password.
    #[error("{0}")]
    DatabaseConnect(String),
    #[error("bad database URL {0}")]
    BadDatabaseUrl(String),
    /// A command that must not create a database (the admin commands) found none at `path`
    /// (absolute).
    #[error("no database at {}", path.display())]
    NoDatabase { path: std::path::PathBuf },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("token error: {0}")]
    Token(String),
    /// The monitor engine could not start (its file, its tables, the lease settings).
    #[error("monitor: {0}")]
    Monitor(#[from] opskit_monitor::Error),
    /// Another `opskit serve` process already serves this SQLite database (`path`, absolute).
    #[error(
        "the SQLite database {} is already served by another opskit serve process{}: SQLite takes one server process; to run two replicas, use PostgreSQL (--database postgres://…)",
        path.display(),
        pid.map_or_else(String::new, |p| format!(" (pid {p})"))
    )]
    DatabaseInUse {
        path: std::path::PathBuf,
        pid: Option<u32>,
    },
}
