//! `opskit-http`: the REST client engine of opskit.
//!
//! A [`Client`] built from a [`ClientConfig`] sends each request down through
//! **cache → rate limiter → retry → auth → transport** (reqwest + rustls):
//!
//! - timeouts always ([`Timeouts`]: connect 10 s, request 30 s, read-idle for streams);
//! - TLS with an extra CA bundle, client certificates and a minimum version ([`TlsConfig`]);
//! - auth providers ([`Auth`]) with secrets from a value, env var, file or command ([`Secret`]);
//! - retries with urllib3 semantics, `Retry-After`, a deadline and a budget ([`RetryPolicy`]);
//! - per-host client-side rate limiting and server quota headers ([`RateLimit`]);
//! - pagination as a stream of items ([`Paginator`], [`PageStyle`]);
//! - a TTL response cache with revalidation ([`CacheConfig`]);
//! - multipart uploads ([`Multipart`]) and resumable downloads ([`DownloadOptions`]);
//! - one typed [`Error`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), opskit_http::Error> {
//! use opskit_http::{Auth, Client, ClientConfig, Secret};
//! let client = Client::new(
//!     ClientConfig::new("https://api.example.com/v1/").auth(Auth::Bearer(Secret::env("API_TOKEN"))),
//! )?;
//! let resp = client.get("health").send().await?.error_for_status().await?;
//! println!("{}", resp.status());
//! # Ok(()) }
//! ```

mod auth;
mod cache;
mod client;
mod config;
mod download;
pub mod duration;
mod error;
mod login;
mod observe;
mod paginate;
mod proxy;
mod ratelimit;
mod redirect;
mod request;
mod response;
pub mod retry;
mod secret;
mod tls;

pub use auth::{ApiKeyLocation, Auth, ClientAuthMethod, OAuth2ClientCredentials, RefreshTokenAuth};
pub use cache::CacheConfig;
pub use client::{Client, IDEMPOTENCY_KEY};
pub use config::{
    ClientConfig, DEFAULT_MAX_BODY, DEFAULT_USER_AGENT, ProxyConfig, Timeouts, TlsConfig,
    TlsVersion,
};
pub use download::{DownloadOptions, DownloadProgress, DownloadReport, ProgressFn, partial_path};
pub use error::{BODY_EXCERPT_LIMIT, Error, StatusError, TimeoutPhase};
pub use login::{LoginAuth, LoginBody, TokenEvent, TokenSet, TokenSink};
pub use observe::{
    ConnectEvent, DnsEvent, Observer, REDACTED, RequestEvent, ResponseEvent, WaitEvent, WaitReason,
    is_sensitive_header, redact_headers, redact_url, redact_url_path,
};
pub use paginate::{PageStyle, Paginator, next_link};
pub use ratelimit::RateLimit;
pub use request::{BodyStream, Multipart, Part, RequestBuilder};
pub use response::Response;
pub use retry::{RetryBudget, RetryPolicy};
pub use secret::{Secret, VaultReader, VaultRef, install_vault_reader};

pub use http::{HeaderMap, Method, StatusCode};
pub use url::Url;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
