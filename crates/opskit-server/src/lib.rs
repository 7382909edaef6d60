//! `opskit serve`: the inventory REST API.
//!
//! request → tower layers (request id, trace, metrics, security headers, problem rendering, CORS,
//! timeout, body limit) → router → auth middleware (JWT | API key | Basic → [`auth::Principal`],
//! then the per-principal rate limit) → handler → [`store::Store`] (SQLite or PostgreSQL) → JSON.
//! Every error is a [`problem::AppError`] rendered as `application/problem+json`.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod metrics;
pub mod middleware;
pub mod model;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod store;
pub mod throttle;
pub mod users;

pub use app::{AppState, Application, app};
pub use config::ServerConfig;

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
}
