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
pub mod error;
pub mod inventory;
pub mod metrics;
pub mod middleware;
pub mod model;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod serve_lock;
pub mod state;
pub mod status_page;
pub mod store;
pub mod throttle;
pub mod users;

pub use app::{Application, app};
pub use config::ServerConfig;
pub use error::Error;
pub use state::AppState;
