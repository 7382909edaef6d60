//! Watching what the client does, for `--verbose` output and logs, with secrets redacted.

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};

/// What replaces a secret in every event, log line and `Debug` output.
pub const REDACTED: &str = "<redacted>";

/// Header names whose values are always redacted.
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "private-token",
    "x-vault-token",
];

/// Whether a header's value must never be shown.
pub fn is_sensitive_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE.contains(&lower.as_str())
        || lower.contains("token")
        || lower.contains("secret")
        || lower.contains("password")
}

/// Headers as `(name, value)` pairs with sensitive values replaced by [`REDACTED`].
pub fn redact_headers(headers: &HeaderMap, extra_sensitive: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().to_string();
            let value = if is_sensitive_header(&name)
                || extra_sensitive
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&name))
            {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

/// A URL with the values of sensitive query parameters replaced by [`REDACTED`].
/// `url` with its path, query and fragment replaced by [`REDACTED`], for URLs whose path is the
/// credential (Slack and Teams incoming webhooks).
///
/// ```
/// let u = url::Url::parse("https://hooks.slack.com/services/T0/B0/s3cr3t?x=1").unwrap();
/// assert_eq!(opskit_http::redact_url_path(&u), "https://hooks.slack.com/<redacted>");
/// ```
pub fn redact_url_path(url: &url::Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push('/');
    out.push_str(REDACTED);
    out
}

pub fn redact_url(url: &url::Url, extra_sensitive: &[String]) -> String {
    if url.query().is_none() && url.password().is_none() {
        return url.to_string();
    }
    let mut out = url.clone();
    if out.password().is_some() {
        let _ = out.set_password(Some(REDACTED));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = is_sensitive_header(&k)
                    || k.eq_ignore_ascii_case("key")
                    || k.eq_ignore_ascii_case("api_key")
                    || k.eq_ignore_ascii_case("apikey")
                    || k.eq_ignore_ascii_case("access_token")
                    || extra_sensitive.iter().any(|s| s.eq_ignore_ascii_case(&k));
                (
                    k.into_owned(),
                    if secret {
                        REDACTED.to_string()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        out.query_pairs_mut().clear().extend_pairs(pairs);
    }
    out.to_string()
}

/// One attempt about to be sent.
#[derive(Debug, Clone)]
pub struct RequestEvent {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The method.
    pub method: Method,
    /// The URL, secrets redacted.
    pub url: String,
    /// Request headers (auth included), secrets redacted.
    pub headers: Vec<(String, String)>,
    /// Body size when known.
    pub body_len: Option<u64>,
}

/// The response headers of one attempt.
#[derive(Debug, Clone)]
pub struct ResponseEvent {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The method.
    pub method: Method,
    /// The final URL (after redirects), secrets redacted.
    pub url: String,
    /// The status.
    pub status: StatusCode,
    /// The HTTP version, e.g. `HTTP/1.1`.
    pub version: String,
    /// Response headers, secrets redacted.
    pub headers: Vec<(String, String)>,
    /// Time from sending to the response headers.
    pub elapsed: Duration,
    /// Whether the response was served from the cache.
    pub from_cache: bool,
}

/// Why the client is waiting before doing something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Backoff before retry number `retry`, after `cause` (e.g. "HTTP 503", "connect error").
    Retry {
        /// 1 for the first retry.
        retry: u32,
        /// What failed.
        cause: String,
        /// Whether the wait came from the server's `Retry-After`.
        retry_after: bool,
    },
    /// The client-side quota for this host is used up.
    RateLimit,
    /// The server said the quota is used up (`RateLimit-Remaining: 0`).
    ServerQuota,
}

/// A wait the client is about to do.
#[derive(Debug, Clone)]
pub struct WaitEvent {
    /// The host concerned.
    pub host: String,
    /// How long.
    pub wait: Duration,
    /// Why.
    pub reason: WaitReason,
}

/// Receives events about requests; the CLI implements it for `--verbose`.
/// Every method has an empty default. Implementations must be cheap and never block.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use opskit_http::{ClientConfig, Observer, RequestEvent};
/// #[derive(Default)]
/// struct Lines(Mutex<Vec<String>>);
/// impl Observer for Lines {
///     fn on_request(&self, ev: &RequestEvent) {
///         if let Ok(mut l) = self.0.lock() { l.push(format!("> {} {}", ev.method, ev.url)); }
///     }
/// }
/// let cfg = ClientConfig::default().observer(Arc::new(Lines::default()));
/// assert!(cfg.observer.is_some());
/// ```
pub trait Observer: Send + Sync {
    /// An attempt is about to be sent.
    fn on_request(&self, _event: &RequestEvent) {}
    /// An attempt got its response headers.
    fn on_response(&self, _event: &ResponseEvent) {}
    /// The client is about to wait.
    fn on_wait(&self, _event: &WaitEvent) {}
    /// The server's rate-limit headers say few requests remain.
    fn on_quota_low(&self, _host: &str, _remaining: u64) {}
    /// Whether the client times its DNS lookups and new connections for this observer
    /// ([`Observer::on_dns`], [`Observer::on_connect`]). Read once, when the client is built;
    /// off by default (the lookups then go through reqwest's own resolver).
    fn times_connections(&self) -> bool {
        false
    }
    /// A DNS lookup for a new connection finished (only with [`Observer::times_connections`]).
    fn on_dns(&self, _event: &DnsEvent) {}
    /// A new connection was opened or failed (only with [`Observer::times_connections`]).
    fn on_connect(&self, _event: &ConnectEvent) {}
}

/// A DNS lookup the transport made to open a connection. A URL whose host is an IP address
/// needs none, and a reused connection none either: then no event comes.
#[derive(Debug, Clone)]
pub struct DnsEvent {
    /// The name looked up.
    pub host: String,
    /// How long the lookup took (the system resolver, as reqwest's default).
    pub elapsed: Duration,
    /// How many addresses it gave, or why it failed.
    pub result: Result<usize, String>,
}

/// A new connection the transport opened: the DNS lookup when the host is a name, the TCP
/// connect, a proxy's tunnel and, for `https://`, the TLS handshake, as one span
/// (`elapsed`), with the TLS handshake's part of it apart (`tls_handshake`).
#[derive(Debug, Clone)]
pub struct ConnectEvent {
    /// From the start of the connection attempt to a usable connection (or the failure).
    pub elapsed: Duration,
    /// Whether the connection was opened.
    pub ok: bool,
    /// The end of `elapsed` spent in the TLS handshake: from rustls building its ClientHello
    /// (right after the TCP connection, or a proxy's tunnel, is up) to the connection being
    /// ready or failing. `None` when no handshake started (`http://`, or the TCP connect failed).
    pub tls_handshake: Option<Duration>,
}

/// Makes the transport report its DNS lookups and new connections to `observer`: a resolver
/// that times each lookup (`tokio::net::lookup_host`: getaddrinfo on the blocking pool, as
/// reqwest's default resolver) and a connector layer that times each new connection, its TLS
/// handshake apart by `mark` (set by the session store of the rustls configuration built in
/// `tls::configure`).
pub(crate) fn time_connections(
    b: reqwest::ClientBuilder,
    observer: std::sync::Arc<dyn Observer>,
    mark: std::sync::Arc<crate::tls::HandshakeMark>,
) -> reqwest::ClientBuilder {
    b.dns_resolver(std::sync::Arc::new(TimedResolver(observer.clone())))
        .connector_layer(TimedConnectLayer(observer, mark))
}

struct TimedResolver(std::sync::Arc<dyn Observer>);

impl reqwest::dns::Resolve for TimedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let observer = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let start = std::time::Instant::now();
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|addrs| addrs.collect::<Vec<std::net::SocketAddr>>());
            let elapsed = start.elapsed();
            match found {
                Ok(addrs) => {
                    observer.on_dns(&DnsEvent {
                        host,
                        elapsed,
                        result: Ok(addrs.len()),
                    });
                    Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
                }
                Err(e) => {
                    observer.on_dns(&DnsEvent {
                        host,
                        elapsed,
                        result: Err(e.to_string()),
                    });
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

#[derive(Clone)]
struct TimedConnectLayer(
    std::sync::Arc<dyn Observer>,
    std::sync::Arc<crate::tls::HandshakeMark>,
);

impl<S> tower::Layer<S> for TimedConnectLayer {
    type Service = TimedConnect<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TimedConnect {
            inner,
            observer: self.0.clone(),
            mark: self.1.clone(),
        }
    }
}

#[derive(Clone)]
struct TimedConnect<S> {
    inner: S,
    observer: std::sync::Arc<dyn Observer>,
    mark: std::sync::Arc<crate::tls::HandshakeMark>,
}

type Connecting<T, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, R> tower::Service<R> for TimedConnect<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Connecting<S::Response, S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.mark.reset();
        let start = std::time::Instant::now();
        let connecting = self.inner.call(req);
        let observer = self.observer.clone();
        let mark = self.mark.clone();
        Box::pin(async move {
            let conn = connecting.await;
            let end = std::time::Instant::now();
            // a mark from before this connection started belongs to another one
            let tls_start = mark.take().filter(|t| *t >= start);
            observer.on_connect(&ConnectEvent {
                elapsed: end.saturating_duration_since(start),
                ok: conn.is_ok(),
                tls_handshake: tls_start.map(|t| end.saturating_duration_since(t)),
            });
            conn
        })
    }
}
