//! `kind = "http"`: one request through opskit-http, never retried (thresholds handle flakes).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use opskit_http::{Client, ClientConfig, Method, RateLimit, RetryPolicy, Timeouts, TlsConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::Raw;
use crate::config::HttpCheck;

/// The most of a body read for conditions.
const MAX_BODY: usize = 1024 * 1024;

type Key = (Option<PathBuf>, bool, bool);

/// HTTP clients shared by all monitors with the same TLS and redirect settings.
#[derive(Default)]
pub(crate) struct Clients {
    clients: Mutex<HashMap<Key, Client>>,
}

impl Clients {
    fn get(&self, key: Key) -> Result<Client, String> {
        let mut map = self
            .clients
            .lock()
            .map_err(|_| "internal error: client table poisoned".to_string())?;
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let cfg = ClientConfig {
            timeouts: Timeouts {
                connect: Duration::from_secs(10),
                request: Duration::from_secs(60),
                read_idle: Duration::from_secs(60),
            },
            retry: RetryPolicy::none(),
            rate_limit: RateLimit {
                respect_headers: false,
                ..RateLimit::default()
            },
            tls: TlsConfig {
                ca_bundle: key.0.clone(),
                danger_accept_invalid_certs: key.1,
                ..TlsConfig::default()
            },
            max_redirects: if key.2 { 10 } else { 0 },
            ..ClientConfig::default()
        };
        let c = Client::new(cfg).map_err(|e| e.to_string())?;
        map.insert(key, c.clone());
        Ok(c)
    }

    pub(crate) async fn check(&self, h: &HttpCheck, timeout: Duration) -> Raw {
        match self.request(h, timeout).await {
            Ok(r) => r,
            Err(e) => Raw::err(json!({}), e),
        }
    }

    async fn request(&self, h: &HttpCheck, timeout: Duration) -> Result<Raw, String> {
        let client = self.get((h.ca_bundle.clone(), h.insecure, h.follow_redirects))?;
        let method = Method::from_bytes(h.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = client.request(method, &h.url).timeout(timeout).no_cache();
        for (k, v) in &h.headers {
            let v = v.resolve().await.map_err(|e| format!("header {k}: {e}"))?;
            req = req.header(k, v.expose_secret());
        }
        if let Some(b) = &h.bearer {
            let t = b.resolve().await.map_err(|e| format!("bearer: {e}"))?;
            req = req.header("authorization", format!("Bearer {}", t.expose_secret()));
        }
        if let Some((user, pw)) = &h.basic {
            let p = pw
                .resolve()
                .await
                .map_err(|e| format!("basic_password: {e}"))?;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", p.expose_secret()));
            req = req.header("authorization", format!("Basic {token}"));
        }
        if let Some(b) = &h.body {
            req = req.body(b.clone().into_bytes());
        }
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let url = crate::config::shown_url(resp.url().as_str());
        let mut headers = serde_json::Map::new();
        for (k, v) in resp.headers() {
            if opskit_http::is_sensitive_header(k.as_str()) {
                continue;
            }
            headers.insert(
                k.as_str().to_ascii_lowercase(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            );
        }
        let mut chunks = Box::pin(resp.chunks());
        let mut body = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, chunks.next()).await {
                Err(_) => return Err(format!("the body did not arrive within {timeout:?}")),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(c))) => {
                    body.extend_from_slice(&c);
                    if body.len() >= MAX_BODY {
                        body.truncate(MAX_BODY);
                        break;
                    }
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let body_value = serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        let ip = if h.resolve_ip {
            resolve_ip(&h.url, timeout).await
        } else {
            None
        };
        Ok(Raw::ok(json!({
            "ip": ip,
            "status": status,
            "url": url,
            "headers": headers,
            "body": body_value,
            "response_time_ms": (elapsed * 10.0).round() / 10.0,
        })))
    }

    /// Any answer at all from `url` within `timeout` (the guard).
    pub(crate) async fn any_answer(&self, url: &str, timeout: Duration) -> bool {
        let Ok(client) = self.get((None, false, false)) else {
            return false;
        };
        matches!(
            tokio::time::timeout(timeout, client.get(url).timeout(timeout).no_cache().send()).await,
            Ok(Ok(_))
        )
    }
}

/// The first address of the URL's host (for conditions on `.ip`).
async fn resolve_ip(url: &str, timeout: Duration) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let port = u.port_or_known_default()?;
    match u.host()? {
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
        url::Host::Domain(d) => {
            let mut addrs = tokio::time::timeout(timeout, tokio::net::lookup_host((d, port)))
                .await
                .ok()?
                .ok()?;
            addrs.next().map(|a| a.ip().to_string())
        }
    }
}
