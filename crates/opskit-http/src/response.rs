//! A response: status, headers, final URL, and a body read buffered (under the request
//! deadline) or streamed (under the read-idle timeout).

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, StatusCode, Version};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use crate::config::Timeouts;
use crate::error::{BODY_EXCERPT_LIMIT, Error, StatusError, TimeoutPhase};

pub(crate) enum BodyState {
    Live(reqwest::Response),
    Buffered(Bytes),
}

/// A response.
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) version: Version,
    pub(crate) url: Url,
    pub(crate) shown_url: String,
    pub(crate) body: BodyState,
    pub(crate) deadline: Instant,
    pub(crate) timeouts: Timeouts,
    pub(crate) from_cache: bool,
    pub(crate) attempts: u32,
    /// Cap of a buffered body ([`crate::ClientConfig::max_body`]).
    pub(crate) max_body: u64,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.shown_url)
            .field("from_cache", &self.from_cache)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }
    /// Whether this came from the response cache (fresh hit or 304 revalidation).
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// How many attempts it took (1 = no retry).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    /// `Content-Length`, when known.
    pub fn content_length(&self) -> Option<u64> {
        match &self.body {
            BodyState::Live(r) => r.content_length(),
            BodyState::Buffered(b) => Some(b.len() as u64),
        }
    }

    /// The whole body, under the request deadline, at most `max_body` bytes
    /// ([`crate::ClientConfig::max_body`]); a larger body is [`Error::BodyTooLarge`], found as
    /// soon as `Content-Length` or the bytes read pass the cap.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        let limit = self.max_body;
        self.bytes_limited(limit).await
    }

    /// [`Response::bytes`] with an explicit cap.
    pub async fn bytes_limited(self, limit: u64) -> Result<Bytes, Error> {
        match self.body {
            BodyState::Buffered(b) => {
                if b.len() as u64 > limit {
                    return Err(Error::BodyTooLarge {
                        url: self.shown_url,
                        limit,
                    });
                }
                Ok(b)
            }
            BodyState::Live(mut r) => {
                let url = self.shown_url;
                if r.content_length().is_some_and(|n| n > limit) {
                    return Err(Error::BodyTooLarge { url, limit });
                }
                let timeouts = self.timeouts;
                let read = async {
                    let mut buf = bytes::BytesMut::new();
                    while let Some(c) = r
                        .chunk()
                        .await
                        .map_err(|e| Error::from_reqwest(e, &url, &timeouts))?
                    {
                        if (buf.len() + c.len()) as u64 > limit {
                            return Err(Error::BodyTooLarge {
                                url: url.clone(),
                                limit,
                            });
                        }
                        buf.extend_from_slice(&c);
                    }
                    Ok(buf.freeze())
                };
                match tokio::time::timeout_at(self.deadline, read).await {
                    Err(_) => Err(Error::Timeout {
                        phase: TimeoutPhase::Request,
                        after: self.timeouts.request,
                        url,
                    }),
                    Ok(r) => r,
                }
            }
        }
    }

    /// The body as text (lossy UTF-8).
    pub async fn text(self) -> Result<String, Error> {
        let b = self.bytes().await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// The body decoded from JSON.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.shown_url.clone();
        let b = self.bytes().await?;
        serde_json::from_slice(&b).map_err(|e| Error::Decode {
            url,
            message: format!("invalid JSON: {e}"),
        })
    }

    /// `Ok(self)` for 1xx–3xx, otherwise [`Error::Status`] with the code, headers and a
    /// bounded excerpt of the body. Nothing turns statuses into errors unless you call this.
    pub async fn error_for_status(self) -> Result<Self, Error> {
        if !(self.status.is_client_error() || self.status.is_server_error()) {
            return Ok(self);
        }
        Err(self.into_status_error().await)
    }

    pub(crate) async fn into_status_error(self) -> Error {
        let status = self.status;
        let headers = self.headers.clone();
        let url = self.shown_url.clone();
        let excerpt = match self.body {
            BodyState::Buffered(b) => excerpt(&b),
            BodyState::Live(mut r) => {
                let mut buf: Vec<u8> = Vec::new();
                let deadline = self.deadline;
                while buf.len() < BODY_EXCERPT_LIMIT {
                    match tokio::time::timeout_at(deadline, r.chunk()).await {
                        Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
                        _ => break,
                    }
                }
                excerpt(&buf)
            }
        };
        Error::Status(Box::new(StatusError {
            status,
            headers,
            body_excerpt: excerpt,
            url,
        }))
    }

    /// The body as a stream of chunks. Each chunk must arrive within the read-idle timeout;
    /// the whole-request deadline does not apply (large downloads may take long).
    pub fn chunks(self) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
        let idle = self.timeouts.read_idle;
        let timeouts = self.timeouts;
        let url = self.shown_url;
        match self.body {
            BodyState::Buffered(b) => {
                futures::stream::iter(if b.is_empty() { vec![] } else { vec![Ok(b)] }).left_stream()
            }
            BodyState::Live(r) => futures::stream::unfold(Some(r), move |state| {
                let url = url.clone();
                async move {
                    let mut r = state?;
                    match tokio::time::timeout(idle, r.chunk()).await {
                        Err(_) => Some((
                            Err(Error::Timeout {
                                phase: TimeoutPhase::ReadIdle,
                                after: idle,
                                url,
                            }),
                            None,
                        )),
                        Ok(Err(e)) => Some((Err(Error::from_reqwest(e, &url, &timeouts)), None)),
                        Ok(Ok(None)) => None,
                        Ok(Ok(Some(c))) => Some((Ok(c), Some(r))),
                    }
                }
            })
            .right_stream(),
        }
    }

    /// The read-idle timeout applied by [`Response::chunks`].
    pub fn read_idle_timeout(&self) -> Duration {
        self.timeouts.read_idle
    }
}

fn excerpt(b: &[u8]) -> String {
    let cut = &b[..b.len().min(BODY_EXCERPT_LIMIT)];
    String::from_utf8_lossy(cut).into_owned()
}
