//! The client and its request pipeline: cache → rate limiter → retry → auth → transport.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use secrecy::ExposeSecret;
use tokio::time::Instant;
use url::Url;

use crate::auth::{AuthState, Credential};
use crate::cache::{self, Cache, Entry};
use crate::config::ClientConfig;
use crate::error::{Error, TimeoutPhase};
use crate::observe::{self, RequestEvent, ResponseEvent, WaitEvent, WaitReason};
use crate::ratelimit::RateLimiterState;
use crate::redirect::{self, SecretNames};
use crate::request::{Body, RequestBuilder};
use crate::response::{BodyState, Response};
use crate::retry;

/// Most response header lines accepted (hyper's default of 100 is too few for some APIs).
const MAX_RESPONSE_HEADERS: usize = 1000;

/// The header carrying the idempotency key of retried POST/PATCH requests.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// An HTTP client. Cheap to clone; clones share connections, tokens, quotas and cache.
///
/// ```no_run
/// # async fn demo() -> Result<(), opskit_http::Error> {
/// use opskit_http::{Client, ClientConfig};
/// let client = Client::new(ClientConfig::new("https://api.example.com/v1/"))?;
/// let user: serde_json::Value = client.get("users/42").send().await?.json().await?;
/// # let _ = user; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.cfg)
            .finish()
    }
}

struct Inner {
    cfg: ClientConfig,
    base: Option<Url>,
    http: reqwest::Client,
    default_headers: HeaderMap,
    auth: AuthState,
    limiter: RateLimiterState,
    cache: Option<Cache>,
    sensitive: Vec<String>,
    secrets: SecretNames,
}

enum Failure {
    Connect,
    Read,
    Status,
}

impl Client {
    /// Build a client. Fails with [`Error::Config`] on a bad base URL, header, certificate,
    /// key, proxy or quota.
    pub fn new(cfg: ClientConfig) -> Result<Client, Error> {
        let base = match &cfg.base_url {
            None => None,
            Some(b) => {
                let mut u = Url::parse(b).map_err(|e| {
                    Error::config(format!(
                        "base URL {b:?} is not a valid absolute URL ({e}); write it like https://api.example.com/v1/"
                    ))
                })?;
                if u.scheme() != "http" && u.scheme() != "https" {
                    return Err(Error::config(format!(
                        "base URL {b:?} must start with http:// or https://"
                    )));
                }
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                Some(u)
            }
        };
        let mut default_headers = HeaderMap::new();
        for (k, v) in &cfg.default_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::config(format!("{k:?} is not a valid header name")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                Error::config(format!(
                    "the value of header {k} contains characters not allowed in a header"
                ))
            })?;
            if observe::is_sensitive_header(k) {
                value.set_sensitive(true);
            }
            default_headers.append(name, value);
        }
        // Redirects are followed by `redirect::Chain` (secrets stay with their origin), never by
        // reqwest; default headers are added per hop so that secret ones can be dropped; no
        // `Referer` is ever sent (it would carry a query-string key to the next origin).
        let mut b = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .connect_timeout(cfg.timeouts.connect)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .http1_max_headers(MAX_RESPONSE_HEADERS)
            .referer(false)
            .redirect(reqwest::redirect::Policy::none());
        // an explicit proxy (its password read like every secret), the environment's, or none
        b = crate::proxy::configure(b, &cfg)?;
        // trusted certificates (a CA bundle as curl --cacert), client identity, minimum version
        // --timing: DNS lookups and new connections timed for the observer that asks, the TLS
        // handshake apart through the session store of a rustls configuration built here
        let timed = cfg.observer.as_ref().filter(|o| o.times_connections());
        let mark = timed.map(|_| Arc::new(crate::tls::HandshakeMark::default()));
        b = crate::tls::configure(b, &cfg.tls, mark.clone())?;
        if let (Some(o), Some(mark)) = (timed, mark) {
            b = observe::time_connections(b, o.clone(), mark);
        }
        let http = b
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        let auth = AuthState::new(cfg.auth.clone(), http.clone(), cfg.timeouts.request);
        let limiter = RateLimiterState::new(cfg.rate_limit.clone())?;
        let cache = cfg.cache.clone().map(Cache::new);
        let mut secrets = SecretNames {
            headers: cfg.secret_headers.clone(),
            query: cfg.secret_query.clone(),
        };
        if let crate::Auth::ApiKey { name, location, .. } = &cfg.auth {
            match location {
                crate::ApiKeyLocation::Header => secrets.headers.push(name.clone()),
                crate::ApiKeyLocation::Query => secrets.query.push(name.clone()),
            }
        }
        let mut sensitive = cfg.auth.sensitive_names();
        sensitive.extend(secrets.all());
        Ok(Client {
            inner: Arc::new(Inner {
                cfg,
                base,
                http,
                default_headers,
                auth,
                limiter,
                cache,
                sensitive,
                secrets,
            }),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// Start a request. `target` is an absolute URL or a path joined to the base URL
    /// (`users/1` and `/users/1` both go under the base path).
    pub fn request(&self, method: Method, target: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, target)
    }
    /// A GET request.
    pub fn get(&self, target: &str) -> RequestBuilder {
        self.request(Method::GET, target)
    }
    /// A POST request.
    pub fn post(&self, target: &str) -> RequestBuilder {
        self.request(Method::POST, target)
    }
    /// A PUT request.
    pub fn put(&self, target: &str) -> RequestBuilder {
        self.request(Method::PUT, target)
    }
    /// A PATCH request.
    pub fn patch(&self, target: &str) -> RequestBuilder {
        self.request(Method::PATCH, target)
    }
    /// A DELETE request.
    pub fn delete(&self, target: &str) -> RequestBuilder {
        self.request(Method::DELETE, target)
    }
    /// A HEAD request.
    pub fn head(&self, target: &str) -> RequestBuilder {
        self.request(Method::HEAD, target)
    }

    /// How many times an OAuth2 / refresh token was fetched so far.
    pub async fn token_fetches(&self) -> u64 {
        self.inner.auth.token_fetches().await
    }

    /// Resolve a request target against the base URL.
    pub fn resolve_url(&self, target: &str) -> Result<Url, Error> {
        if target.starts_with("http://") || target.starts_with("https://") {
            return Url::parse(target)
                .map_err(|e| Error::usage(format!("{target:?} is not a valid URL: {e}")));
        }
        if target.contains("://") {
            return Err(Error::usage(format!(
                "{target:?}: only http:// and https:// URLs are supported"
            )));
        }
        let base = self.inner.base.as_ref().ok_or_else(|| {
            Error::usage(format!(
                "{target:?} is a path but no base URL is configured; give a full URL (https://host/path) or set a base URL"
            ))
        })?;
        base.join(target.trim_start_matches('/'))
            .map_err(|e| Error::usage(format!("cannot join {target:?} to {base}: {e}")))
    }

    pub(crate) fn redact(&self, url: &Url) -> String {
        if self.inner.cfg.secret_path {
            observe::redact_url_path(url)
        } else {
            observe::redact_url(url, &self.inner.sensitive)
        }
    }

    /// Run a request through the layers.
    pub(crate) async fn execute(&self, rb: RequestBuilder) -> Result<Response, Error> {
        if let Some(msg) = &rb.error {
            return Err(Error::usage(msg.clone()));
        }
        let mut url = self.resolve_url(&rb.target)?;
        if !rb.query.is_empty() {
            url.query_pairs_mut().extend_pairs(rb.query.iter());
        }
        let host = host_key(&url);

        // 1. cache
        let mut stale: Option<Arc<Entry>> = None;
        let cache_key = match &self.inner.cache {
            Some(c)
                if rb.method == Method::GET
                    && !rb.no_cache
                    && !cache::request_bypasses(&rb.headers) =>
            {
                let mut vary = self.inner.default_headers.clone();
                for (k, v) in rb.headers.iter() {
                    vary.insert(k.clone(), v.clone());
                }
                let identity = self.inner.auth.identity().await?;
                let key = c.key(url.as_str(), &vary, &identity);
                if let Some(e) = c.get(&key).await {
                    if c.is_fresh(&e) {
                        return self.cached_response(&rb, &e, 1);
                    }
                    if e.etag().is_some() || e.last_modified().is_some() {
                        stale = Some(e);
                    }
                }
                Some(key)
            }
            _ => None,
        };
        let mut conditional = HeaderMap::new();
        if let Some(e) = &stale {
            if let Some(etag) = e.etag() {
                conditional.insert(http::header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = e.last_modified() {
                conditional.insert(http::header::IF_MODIFIED_SINCE, lm.clone());
            }
        }

        // 2. rate limiter
        self.wait_rate_limits(&host).await;

        // 3-5. retry → auth → transport
        let resp = self.with_retries(&rb, &url, &host, &conditional).await?;

        // back in the cache layer
        match (&self.inner.cache, cache_key) {
            (Some(c), Some(key)) => self.cache_write_back(c, &key, stale, &rb, resp).await,
            _ => Ok(resp),
        }
    }

    pub(crate) fn cached_response(
        &self,
        rb: &RequestBuilder,
        e: &Entry,
        attempts: u32,
    ) -> Result<Response, Error> {
        let url = match Url::parse(&e.url) {
            Ok(u) => u,
            Err(_) => self.resolve_url(&rb.target)?,
        };
        let shown = self.redact(&url);
        if let Some(o) = &self.inner.cfg.observer {
            o.on_response(&ResponseEvent {
                attempt: attempts,
                method: rb.method.clone(),
                url: shown.clone(),
                status: e.status,
                version: "cache".into(),
                headers: observe::redact_headers(&e.headers, &self.inner.sensitive),
                elapsed: Duration::ZERO,
                from_cache: true,
            });
        }
        tracing::debug!(url = %shown, "served from cache");
        Ok(Response {
            status: e.status,
            headers: e.headers.clone(),
            version: http::Version::HTTP_11,
            url,
            shown_url: shown,
            body: BodyState::Buffered(e.body.clone()),
            deadline: Instant::now() + self.inner.cfg.timeouts.request,
            timeouts: self.inner.cfg.timeouts,
            from_cache: true,
            attempts,
            max_body: self.inner.cfg.max_body,
        })
    }

    async fn wait_rate_limits(&self, host: &str) {
        // bounded: each pause is capped by max_pause, and the quota wait by the interval
        for _ in 0..10_000 {
            if let Some(w) = self.inner.limiter.server_pause(host) {
                self.announce_wait(host, w, WaitReason::ServerQuota);
                tokio::time::sleep(w).await;
            }
            match self.inner.limiter.quota_wait(host) {
                None => return,
                Some(w) => {
                    if let Some(o) = &self.inner.cfg.observer {
                        o.on_wait(&WaitEvent {
                            host: host.to_string(),
                            wait: w,
                            reason: WaitReason::RateLimit,
                        });
                    }
                    tracing::trace!(host, wait = ?w, "client-side rate limit");
                    tokio::time::sleep(w).await;
                }
            }
        }
    }

    fn announce_wait(&self, host: &str, wait: Duration, reason: WaitReason) {
        match &reason {
            WaitReason::Retry {
                retry,
                cause,
                retry_after,
            } => tracing::info!(
                host,
                wait = ?wait,
                retry,
                cause = %cause,
                retry_after,
                "waiting before retry"
            ),
            WaitReason::ServerQuota => tracing::info!(
                host,
                wait = ?wait,
                "server rate limit exhausted; pausing until reset"
            ),
            WaitReason::RateLimit => {}
        }
        if let Some(o) = &self.inner.cfg.observer {
            o.on_wait(&WaitEvent {
                host: host.to_string(),
                wait,
                reason,
            });
        }
    }

    async fn with_retries(
        &self,
        rb: &RequestBuilder,
        url: &Url,
        host: &str,
        conditional: &HeaderMap,
    ) -> Result<Response, Error> {
        let policy = &self.inner.cfg.retry;
        let start = Instant::now();
        let may_retry_sent = policy.method_allowed(&rb.method, rb.retry_non_idempotent);
        let non_idempotent = rb.method == Method::POST || rb.method == Method::PATCH;
        let idem_key = match &rb.idempotency_key {
            Some(k) => Some(k.clone()),
            None if non_idempotent
                && may_retry_sent
                && !rb.headers.contains_key(IDEMPOTENCY_KEY) =>
            {
                Some(uuid::Uuid::new_v4().to_string())
            }
            None => None,
        };
        if let Some(b) = &policy.budget {
            b.deposit();
        }
        let (mut attempt, mut retries) = (0u32, 0u32);
        let (mut n_connect, mut n_read, mut n_status) = (0u32, 0u32, 0u32);
        let mut auth_replayed = false;
        loop {
            attempt += 1;
            if attempt > 1
                && let Some(w) = self.inner.limiter.server_pause(host)
            {
                self.announce_wait(host, w, WaitReason::ServerQuota);
                tokio::time::sleep(w).await;
            }
            let cred = self.inner.auth.credential().await?;
            let generation = cred.generation;
            // the overall retry deadline also bounds the attempt in flight
            let retry_cap = policy.deadline.map(|d| d.saturating_sub(start.elapsed()));
            let outcome = self
                .attempt(
                    rb,
                    url,
                    host,
                    cred,
                    idem_key.as_deref(),
                    conditional,
                    attempt,
                    retry_cap,
                )
                .await;

            // auth: refresh once on 401 and replay
            if let Ok(resp) = &outcome
                && resp.status == StatusCode::UNAUTHORIZED
                && !auth_replayed
                && self.inner.auth.auth().can_refresh()
                && rb.body.replayable()
            {
                drop(outcome);
                auth_replayed = true;
                tracing::info!(url = %self.redact(url), "401: refreshing the token and replaying once");
                self.inner.auth.on_unauthorized(generation).await?;
                continue;
            }

            let (kind, cause) = match &outcome {
                Ok(resp) if policy.statuses.contains(&resp.status.as_u16()) => {
                    (Failure::Status, format!("HTTP {}", resp.status))
                }
                Ok(_) => return outcome,
                Err(e) => match e {
                    Error::Connect { .. }
                    | Error::Timeout {
                        phase: TimeoutPhase::Connect,
                        ..
                    } => (Failure::Connect, format!("connect failed: {e}")),
                    Error::Timeout {
                        phase: TimeoutPhase::Request,
                        ..
                    }
                    | Error::Transport { .. } => (Failure::Read, format!("read failed: {e}")),
                    Error::Timeout {
                        phase: TimeoutPhase::RetryDeadline,
                        ..
                    } => return self.give_up(outcome, attempt, retries).await,
                    _ => return outcome,
                },
            };
            let method_ok = matches!(kind, Failure::Connect) || may_retry_sent;
            let (count, limit) = match kind {
                Failure::Connect => (n_connect, policy.connect),
                Failure::Read => (n_read, policy.read),
                Failure::Status => (n_status, policy.status),
            };
            let exhausted = retries >= policy.total || limit.is_some_and(|l| count >= l);
            if !method_ok {
                if matches!(kind, Failure::Status | Failure::Read) && retries == 0 {
                    tracing::debug!(method = %rb.method, cause = %cause, "not retrying a non-idempotent request (opt in to retry it)");
                }
                return self.give_up(outcome, attempt, retries).await;
            }
            if exhausted {
                return self.give_up(outcome, attempt, retries).await;
            }
            if !rb.body.replayable() {
                return Err(Error::BodyNotReplayable {
                    method: rb.method.to_string(),
                    url: self.redact(url),
                });
            }
            let (wait, from_header) = match (&outcome, &kind) {
                (Ok(resp), Failure::Status) if policy.respect_retry_after => {
                    match retry::retry_after_from(&resp.headers) {
                        // "at least this long": never less than our own backoff, so a
                        // server answering `Retry-After: 0` to every 429 is not hammered
                        Some(ra) => (
                            ra.min(policy.retry_after_max)
                                .max(policy.backoff_for(retries + 1)),
                            true,
                        ),
                        None => (policy.backoff_for(retries + 1), false),
                    }
                }
                _ => (policy.backoff_for(retries + 1), false),
            };
            if let Some(deadline) = policy.deadline
                && start.elapsed() + wait > deadline
            {
                tracing::info!(cause = %cause, wait = ?wait, "retry deadline reached; giving up");
                return self.give_up(outcome, attempt, retries.max(1)).await;
            }
            if let Some(b) = &policy.budget
                && !b.try_withdraw()
            {
                tracing::warn!(host, cause = %cause, "retry budget exhausted; not retrying");
                return self.give_up(outcome, attempt, retries).await;
            }
            drop(outcome);
            self.announce_wait(
                host,
                wait,
                WaitReason::Retry {
                    retry: retries + 1,
                    cause,
                    retry_after: from_header,
                },
            );
            tokio::time::sleep(wait).await;
            retries += 1;
            match kind {
                Failure::Connect => n_connect += 1,
                Failure::Read => n_read += 1,
                Failure::Status => n_status += 1,
            }
        }
    }

    /// Stop retrying: unchanged when no retry happened, else [`Error::RetriesExhausted`] (or,
    /// for a status with `raise_on_status` off, the last response itself).
    async fn give_up(
        &self,
        outcome: Result<Response, Error>,
        attempts: u32,
        retries: u32,
    ) -> Result<Response, Error> {
        if retries == 0 {
            return outcome;
        }
        let last = match outcome {
            // the last response is a response: its caller decides what a 503 means
            Ok(resp) if !self.inner.cfg.retry.raise_on_status => return Ok(resp),
            Ok(resp) => resp.into_status_error().await,
            Err(e) => e,
        };
        Err(Error::RetriesExhausted {
            attempts,
            last: Box::new(last),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        rb: &RequestBuilder,
        url: &Url,
        host: &str,
        cred: Credential,
        idem_key: Option<&str>,
        conditional: &HeaderMap,
        attempt: u32,
        retry_cap: Option<Duration>,
    ) -> Result<Response, Error> {
        let shown = self.redact(url);
        let mut target = url.clone();
        if let Some((name, value)) = &cred.query {
            target
                .query_pairs_mut()
                .append_pair(name, value.expose_secret());
        }
        let mut headers = rb.headers.clone();
        for (k, v) in self.inner.default_headers.iter() {
            if !headers.contains_key(k) {
                headers.append(k.clone(), v.clone());
            }
        }
        for (k, v) in conditional.iter() {
            headers.insert(k.clone(), v.clone());
        }
        if let Some((k, v)) = cred.header {
            headers.insert(k, v);
        }
        if let Some(key) = idem_key {
            let v = HeaderValue::from_str(key).map_err(|_| {
                Error::usage("the idempotency key contains characters not allowed in a header")
            })?;
            headers.insert(IDEMPOTENCY_KEY, v);
        }
        let mut req = self.inner.http.request(rb.method.clone(), target);
        match &rb.body {
            Body::Empty => {}
            Body::Bytes(b) => req = req.body(b.clone()),
            Body::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::io(path, e))?;
                let len = file.metadata().await.map_err(|e| Error::io(path, e))?.len();
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                req = req.body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(file),
                ));
            }
            Body::Multipart(m) => req = req.multipart(m.build().await?),
            Body::Stream(s) => {
                let stream = s
                    .lock()
                    .await
                    .take()
                    .ok_or_else(|| Error::BodyNotReplayable {
                        method: rb.method.to_string(),
                        url: shown.clone(),
                    })?;
                req = req.body(reqwest::Body::wrap_stream(stream));
            }
        }
        let mut req = req
            .headers(headers)
            .build()
            .map_err(|e| Error::usage(format!("cannot build the request: {e}")))?;
        if let Some(o) = &self.inner.cfg.observer {
            let mut shown_headers = self.inner.default_headers.clone();
            shown_headers.insert(
                http::header::USER_AGENT,
                HeaderValue::from_str(&self.inner.cfg.user_agent)
                    .unwrap_or(HeaderValue::from_static("opskit")),
            );
            for (k, v) in req.headers().iter() {
                shown_headers.insert(k.clone(), v.clone());
            }
            o.on_request(&RequestEvent {
                attempt,
                method: rb.method.clone(),
                url: shown.clone(),
                headers: observe::redact_headers(&shown_headers, &self.inner.sensitive),
                body_len: rb.body.len(),
            });
        }
        let request_timeout = rb.timeout.unwrap_or(self.inner.cfg.timeouts.request);
        let (timeout, phase) = match retry_cap {
            Some(cap) if cap < request_timeout => (cap, TimeoutPhase::RetryDeadline),
            _ => (request_timeout, TimeoutPhase::Request),
        };
        *req.timeout_mut() = None;
        let sent = Instant::now();
        let deadline = sent + timeout;
        tracing::debug!(method = %rb.method, url = %shown, attempt, "sending");
        let resp = match tokio::time::timeout_at(deadline, self.send_following(req, attempt)).await
        {
            Err(_) => {
                return Err(Error::Timeout {
                    phase,
                    after: timeout,
                    url: shown,
                });
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let final_url = resp.url().clone();
        let final_shown = self.redact(&final_url);
        let resp_headers = resp.headers().clone();
        if let Some(remaining) = self.inner.limiter.observe(host, &resp_headers) {
            tracing::warn!(host, remaining, "server rate limit nearly used up");
            if let Some(o) = &self.inner.cfg.observer {
                o.on_quota_low(host, remaining);
            }
        }
        if let Some(o) = &self.inner.cfg.observer {
            o.on_response(&ResponseEvent {
                attempt,
                method: rb.method.clone(),
                url: final_shown.clone(),
                status,
                version: format!("{:?}", resp.version()),
                headers: observe::redact_headers(&resp_headers, &self.inner.sensitive),
                elapsed: sent.elapsed(),
                from_cache: false,
            });
        }
        let mut timeouts = self.inner.cfg.timeouts;
        timeouts.request = timeout;
        Ok(Response {
            status,
            version: resp.version(),
            headers: resp_headers,
            url: final_url,
            shown_url: final_shown,
            body: BodyState::Live(resp),
            deadline,
            timeouts,
            from_cache: false,
            attempts: attempt,
            max_body: self.inner.cfg.max_body,
        })
    }

    /// Send `req` and follow its redirects by the one policy of [`redirect`]: secrets stay with
    /// their origin, loops and other schemes are errors, no `Referer`.
    async fn send_following(
        &self,
        req: reqwest::Request,
        attempt: u32,
    ) -> Result<reqwest::Response, Error> {
        let mut chain = redirect::Chain::new(req.url(), self.inner.cfg.max_redirects);
        // a copy to re-send the body on 307/308 (None when the body is a one-shot stream)
        let replay = req.try_clone();
        let mut headers = req.headers().clone();
        let mut req = req;
        loop {
            let shown = self.redact(req.url());
            let method = req.method().clone();
            let sent = Instant::now();
            let resp = self
                .inner
                .http
                .execute(req)
                .await
                .map_err(|e| Error::from_reqwest(e, &shown, &self.inner.cfg.timeouts))?;
            let from = resp.url().clone();
            let Some(hop) = chain.next(
                &from,
                resp.status(),
                resp.headers(),
                &method,
                &self.inner.secrets,
                &shown,
            )?
            else {
                return Ok(resp);
            };
            let mut next = if hop.keep_body {
                match replay.as_ref().and_then(reqwest::Request::try_clone) {
                    Some(r) => r,
                    // the body cannot be sent again: the redirect is the answer
                    None => return Ok(resp),
                }
            } else {
                redirect::strip_body_headers(&mut headers);
                reqwest::Request::new(hop.method.clone(), hop.url.clone())
            };
            if chain.stripped {
                self.inner.secrets.strip_headers(&mut headers);
            }
            if let Some(o) = &self.inner.cfg.observer {
                o.on_response(&ResponseEvent {
                    attempt,
                    method: method.clone(),
                    url: shown.clone(),
                    status: resp.status(),
                    version: format!("{:?}", resp.version()),
                    headers: observe::redact_headers(resp.headers(), &self.inner.sensitive),
                    elapsed: sent.elapsed(),
                    from_cache: false,
                });
            }
            tracing::debug!(from = %shown, to = %self.redact(&hop.url), status = %resp.status(), "following a redirect");
            drop(resp);
            *next.method_mut() = hop.method;
            *next.url_mut() = hop.url;
            *next.headers_mut() = headers.clone();
            *next.timeout_mut() = None;
            if let Some(o) = &self.inner.cfg.observer {
                let mut shown_headers = headers.clone();
                shown_headers.insert(
                    http::header::USER_AGENT,
                    HeaderValue::from_str(&self.inner.cfg.user_agent)
                        .unwrap_or(HeaderValue::from_static("opskit")),
                );
                o.on_request(&RequestEvent {
                    attempt,
                    method: next.method().clone(),
                    url: self.redact(next.url()),
                    headers: observe::redact_headers(&shown_headers, &self.inner.sensitive),
                    body_len: None,
                });
            }
            req = next;
        }
    }
}

fn host_key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}
