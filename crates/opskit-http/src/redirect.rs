//! The one redirect policy of the client.
//!
//! reqwest follows no redirect itself (its policy is `none`, and it sends no `Referer`): every
//! hop goes through [`follow`], which knows which headers and query parameters are secrets and
//! keeps them with their origin:
//!
//! - a hop to another origin (scheme, host or port differ), https→http included, drops every
//!   secret header (`Authorization`, `Cookie`, `Proxy-Authorization`, every name
//!   [`crate::is_sensitive_header`] knows, the `--api-key` header, the headers declared in
//!   [`crate::ClientConfig::secret_headers`]) and every secret query parameter (the query API
//!   key, [`crate::ClientConfig::secret_query`]); once dropped they stay dropped for the rest of
//!   the chain;
//! - no `Referer` is ever sent (curl and HTTPie send none), so a query key cannot leak by it;
//! - only `http://` and `https://` targets are followed;
//! - a URL seen twice in one chain is a redirect loop, and more than `max_redirects` hops is an
//!   error: both are [`Error::Redirect`], which is never retried;
//! - 303 (and 301/302 after a POST) continue as a GET without a body; 307/308 re-send the body
//!   when it can be replayed (bytes), else the redirect response itself is returned.

use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::error::Error;
use crate::observe;

/// Header and query-parameter names that hold secrets for one client.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretNames {
    /// Extra header names (beyond [`observe::is_sensitive_header`]).
    pub headers: Vec<String>,
    /// Query parameter names.
    pub query: Vec<String>,
}

impl SecretNames {
    /// Whether the header `name` carries a secret.
    pub(crate) fn is_secret_header(&self, name: &str) -> bool {
        observe::is_sensitive_header(name)
            || name.eq_ignore_ascii_case("host")
            || self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether the query parameter `name` carries a secret.
    pub(crate) fn is_secret_query(&self, name: &str) -> bool {
        self.query.iter().any(|q| q.eq_ignore_ascii_case(name))
    }

    /// All names, for redaction.
    pub(crate) fn all(&self) -> Vec<String> {
        let mut v = self.headers.clone();
        v.extend(self.query.iter().cloned());
        v
    }

    /// Remove every secret header from `headers`.
    pub(crate) fn strip_headers(&self, headers: &mut HeaderMap) {
        let names: Vec<http::HeaderName> = headers
            .keys()
            .filter(|k| self.is_secret_header(k.as_str()))
            .cloned()
            .collect();
        for n in names {
            headers.remove(n);
        }
    }

    /// Remove every secret query parameter from `url`.
    pub(crate) fn strip_query(&self, url: &mut Url) {
        if url.query().is_none() {
            return;
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !self.is_secret_query(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
}

/// Whether `status` is a redirect that [`follow`] acts on.
pub(crate) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// What the next hop of a redirect chain is.
pub(crate) struct Hop {
    /// The next URL (secret query parameters already removed when `strip` is set).
    pub url: Url,
    /// The method of the next hop.
    pub method: Method,
    /// Whether the body is sent again (307/308).
    pub keep_body: bool,
}

/// The state of one redirect chain.
pub(crate) struct Chain {
    origin: url::Origin,
    visited: Vec<Url>,
    hops: usize,
    max: usize,
    /// Secrets were dropped at an earlier hop.
    pub stripped: bool,
}

impl Chain {
    pub(crate) fn new(first: &Url, max: usize) -> Self {
        Chain {
            origin: first.origin(),
            visited: vec![without_fragment(first)],
            hops: 0,
            max,
            stripped: false,
        }
    }

    /// The next hop after a redirect response, `Ok(None)` when it is not followed (no
    /// `Location`, redirects off). `shown` is the redacted URL of the response for messages.
    pub(crate) fn next(
        &mut self,
        from: &Url,
        status: StatusCode,
        headers: &HeaderMap,
        method: &Method,
        secrets: &SecretNames,
        shown: &str,
    ) -> Result<Option<Hop>, Error> {
        if self.max == 0 || !is_redirect(status) {
            return Ok(None);
        }
        let Some(loc) = headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        let mut next = from.join(loc.trim()).map_err(|e| Error::Redirect {
            url: shown.to_string(),
            message: format!("the Location header is not a valid URL ({e})"),
        })?;
        if next.scheme() != "http" && next.scheme() != "https" {
            return Err(Error::Redirect {
                url: shown.to_string(),
                message: format!(
                    "refusing to follow a redirect to a {}: URL (only http and https are followed)",
                    next.scheme()
                ),
            });
        }
        self.hops += 1;
        if self.hops > self.max {
            return Err(Error::Redirect {
                url: shown.to_string(),
                message: format!(
                    "more than {} redirects (the limit): the server redirects again after the \
                     last one followed",
                    self.max
                ),
            });
        }
        let key = without_fragment(&next);
        if self.visited.contains(&key) {
            return Err(Error::Redirect {
                url: shown.to_string(),
                message: format!(
                    "redirect loop: {} was already visited in this chain",
                    observe::redact_url(&key, &secrets.all())
                ),
            });
        }
        self.visited.push(key);
        if next.origin() != self.origin {
            self.stripped = true;
        }
        if self.stripped {
            secrets.strip_query(&mut next);
        }
        let s = status.as_u16();
        let (method, keep_body) = if s == 303 && *method != Method::HEAD
            || (s == 301 || s == 302) && *method == Method::POST
        {
            (Method::GET, false)
        } else {
            (method.clone(), s == 307 || s == 308)
        };
        Ok(Some(Hop {
            url: next,
            method,
            keep_body,
        }))
    }
}

fn without_fragment(u: &Url) -> Url {
    let mut u = u.clone();
    u.set_fragment(None);
    u
}

/// Headers that describe a body, dropped when a hop continues without one.
pub(crate) fn strip_body_headers(headers: &mut HeaderMap) {
    for h in [
        http::header::CONTENT_TYPE,
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_ENCODING,
        http::header::TRANSFER_ENCODING,
    ] {
        headers.remove(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> SecretNames {
        SecretNames {
            headers: vec!["X-Custom-Key".into()],
            query: vec!["api_key".into()],
        }
    }

    #[test]
    fn cross_origin_and_downgrade_strip_but_same_origin_keeps() {
        let s = names();
        let first = Url::parse("https://a.example/x?api_key=k").unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::LOCATION, "/y?api_key=k".parse().unwrap());
        let mut c = Chain::new(&first, 10);
        let hop = c
            .next(&first, StatusCode::FOUND, &h, &Method::GET, &s, "u")
            .unwrap()
            .unwrap();
        assert!(!c.stripped);
        assert_eq!(hop.url.as_str(), "https://a.example/y?api_key=k");
        h.insert(
            http::header::LOCATION,
            "http://a.example/z?api_key=k&x=1".parse().unwrap(),
        );
        let hop = c
            .next(&hop.url, StatusCode::FOUND, &h, &Method::GET, &s, "u")
            .unwrap()
            .unwrap();
        assert!(c.stripped, "https→http is another origin");
        assert_eq!(hop.url.as_str(), "http://a.example/z?x=1");
    }

    #[test]
    fn loops_and_other_schemes_are_errors() {
        let s = names();
        let first = Url::parse("http://a.example/x").unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::LOCATION, "/x".parse().unwrap());
        let mut c = Chain::new(&first, 10);
        let e = c
            .next(&first, StatusCode::FOUND, &h, &Method::GET, &s, "u")
            .err()
            .unwrap();
        assert!(e.to_string().contains("redirect loop"), "{e}");
        h.insert(
            http::header::LOCATION,
            "file:///etc/passwd".parse().unwrap(),
        );
        let mut c = Chain::new(&first, 10);
        let e = c
            .next(&first, StatusCode::FOUND, &h, &Method::GET, &s, "u")
            .err()
            .unwrap();
        assert!(e.to_string().contains("file"), "{e}");
    }

    #[test]
    fn secret_headers_are_known() {
        let s = names();
        let mut h = HeaderMap::new();
        for n in [
            "authorization",
            "cookie",
            "x-custom-key",
            "x-api-key",
            "accept",
        ] {
            h.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        s.strip_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }
}
