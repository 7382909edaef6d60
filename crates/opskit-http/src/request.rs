//! Building a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::client::Client;
use crate::error::Error;
use crate::paginate::Paginator;
use crate::response::Response;

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    pub(crate) name: String,
    pub(crate) source: PartSource,
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum PartSource {
    Text(String),
    Bytes(Bytes),
    File(PathBuf),
}

impl Part {
    /// A text field.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Part {
            name: name.into(),
            source: PartSource::Text(value.into()),
            filename: None,
            content_type: None,
        }
    }
    /// Bytes, e.g. an in-memory file.
    pub fn bytes(name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Part {
            name: name.into(),
            source: PartSource::Bytes(value.into()),
            filename: None,
            content_type: None,
        }
    }
    /// A file read from disk when sent (and re-read on every retry). The file name defaults to
    /// the path's last component.
    pub fn file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let filename = path.file_name().map(|f| f.to_string_lossy().into_owned());
        Part {
            name: name.into(),
            source: PartSource::File(path),
            filename,
            content_type: None,
        }
    }
    /// Set the file name.
    pub fn filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }
    /// Set the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

/// A `multipart/form-data` body made of fields and files.
///
/// ```
/// use opskit_http::{Multipart, Part};
/// let form = Multipart::new()
///     .part(Part::text("comment", "nightly backup"))
///     .part(Part::file("file", "/var/backups/db.tar.gz").content_type("application/gzip"));
/// assert_eq!(form.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    pub(crate) parts: Vec<Part>,
}

impl Multipart {
    /// An empty form.
    pub fn new() -> Self {
        Multipart::default()
    }
    /// Add a part.
    pub fn part(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }
    /// Add a text field.
    pub fn text(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.part(Part::text(name, value))
    }
    /// Add a file.
    pub fn file(self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.part(Part::file(name, path))
    }
    /// Number of parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }
    /// Whether there are no parts.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub(crate) async fn build(&self) -> Result<reqwest::multipart::Form, Error> {
        let mut form = reqwest::multipart::Form::new();
        for p in &self.parts {
            let mut part = match &p.source {
                PartSource::Text(t) => reqwest::multipart::Part::text(t.clone()),
                PartSource::Bytes(b) => reqwest::multipart::Part::bytes(b.to_vec()),
                PartSource::File(path) => {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| Error::io(path, e))?;
                    let len = file.metadata().await.map_err(|e| Error::io(path, e))?.len();
                    let stream = tokio_util::io::ReaderStream::new(file);
                    reqwest::multipart::Part::stream_with_length(
                        reqwest::Body::wrap_stream(stream),
                        len,
                    )
                }
            };
            if let Some(f) = &p.filename {
                part = part.file_name(f.clone());
            }
            if let Some(ct) = &p.content_type {
                part = part.mime_str(ct).map_err(|_| {
                    Error::usage(format!(
                        "content type {ct:?} of part {:?} is not a valid MIME type",
                        p.name
                    ))
                })?;
            }
            form = form.part(p.name.clone(), part);
        }
        Ok(form)
    }
}

/// A body that is not replayable: a one-shot stream.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>>;

#[derive(Clone, Default)]
pub(crate) enum Body {
    #[default]
    Empty,
    Bytes(Bytes),
    File(PathBuf),
    Multipart(Multipart),
    Stream(Arc<Mutex<Option<BodyStream>>>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Body::File(p) => write!(f, "File({p:?})"),
            Body::Multipart(m) => write!(f, "Multipart({} parts)", m.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl Body {
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(_))
    }
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            _ => None,
        }
    }
}

/// A request being built; send it with [`RequestBuilder::send`].
///
/// Errors in `header`, `json` or `query` are kept and reported by `send`.
///
/// ```no_run
/// # async fn demo() -> Result<(), opskit_http::Error> {
/// use opskit_http::{Client, ClientConfig, Method};
/// let client = Client::new(ClientConfig::new("https://api.example.com/"))?;
/// let created: serde_json::Value = client
///     .request(Method::POST, "servers")
///     .json(&serde_json::json!({"name": "web-1"}))
///     .retry_non_idempotent(true)          // retried with one Idempotency-Key
///     .send()
///     .await?
///     .error_for_status()
///     .await?
///     .json()
///     .await?;
/// # let _ = created; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    pub(crate) client: Client,
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Body,
    pub(crate) timeout: Option<Duration>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) no_cache: bool,
    pub(crate) error: Option<String>,
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, target: &str) -> Self {
        RequestBuilder {
            client,
            method,
            target: target.to_string(),
            headers: HeaderMap::new(),
            query: Vec::new(),
            body: Body::Empty,
            timeout: None,
            idempotency_key: None,
            retry_non_idempotent: false,
            no_cache: false,
            error: None,
        }
    }

    fn fail(mut self, msg: String) -> Self {
        if self.error.is_none() {
            self.error = Some(msg);
        }
        self
    }

    /// Add a header (appended; repeated names are all sent).
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        let value = value.as_ref();
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(mut v)) => {
                if crate::observe::is_sensitive_header(n.as_str()) {
                    v.set_sensitive(true);
                }
                self.headers.append(n, v);
                self
            }
            (Err(_), _) => self.fail(format!("{name:?} is not a valid header name")),
            (_, Err(_)) => self.fail(format!(
                "the value of header {name} contains characters not allowed in a header"
            )),
        }
    }

    /// Add several headers.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        for (k, v) in headers.iter() {
            self.headers.append(k.clone(), v.clone());
        }
        self
    }

    /// Add query parameters.
    pub fn query<T: Serialize + ?Sized>(mut self, params: &T) -> Self {
        let encoded = match serde_json::to_value(params) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("cannot encode query parameters: {e}")),
        };
        match flatten_query(&encoded) {
            Ok(pairs) => {
                self.query.extend(pairs);
                self
            }
            Err(m) => self.fail(m),
        }
    }

    /// Add one query parameter.
    pub fn query_pair(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// A JSON body (sets `Content-Type: application/json`).
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => {
                self.body = Body::Bytes(Bytes::from(v));
                self.set_content_type("application/json")
            }
            Err(e) => self.fail(format!("cannot encode the JSON body: {e}")),
        }
    }

    /// A raw body (replayed on retries).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// A body read from a file, reopened on every attempt (so it is replayable).
    pub fn body_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.body = Body::File(path.into());
        self
    }

    /// A one-shot streamed body. It cannot be replayed: if a retry is needed, `send`
    /// returns [`Error::BodyNotReplayable`].
    pub fn body_stream(mut self, stream: BodyStream) -> Self {
        self.body = Body::Stream(Arc::new(Mutex::new(Some(stream))));
        self
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        let encoded = match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("cannot encode the form: {e}")),
        };
        match flatten_query(&encoded) {
            Ok(pairs) => {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    ser.append_pair(&k, &v);
                }
                self.body = Body::Bytes(Bytes::from(ser.finish()));
                self.set_content_type("application/x-www-form-urlencoded")
            }
            Err(m) => self.fail(m),
        }
    }

    /// A multipart body.
    pub fn multipart(mut self, form: Multipart) -> Self {
        self.body = Body::Multipart(form);
        self
    }

    /// Send this `Idempotency-Key` on every attempt (otherwise one is generated for
    /// POST/PATCH when their retries are on).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Allow retries of this POST/PATCH (with one `Idempotency-Key` on every attempt).
    pub fn retry_non_idempotent(mut self, on: bool) -> Self {
        self.retry_non_idempotent = on;
        self
    }

    /// Deadline of each attempt of this request (overrides the client's request timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Bypass the response cache for this request.
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    fn set_content_type(mut self, ct: &'static str) -> Self {
        if !self.headers.contains_key(http::header::CONTENT_TYPE) {
            self.headers
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        self
    }

    /// Send the request through cache → rate limiter → retry → auth → transport.
    pub async fn send(self) -> Result<Response, Error> {
        let client = self.client.clone();
        client.execute(self).await
    }

    /// Walk all pages of this (GET) request as a stream of items.
    pub fn paginate(
        self,
        paginator: Paginator,
    ) -> impl futures::Stream<Item = Result<serde_json::Value, Error>> + Send + 'static {
        crate::paginate::paginate(self, paginator)
    }
}

fn flatten_query(v: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    fn scalar(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::Null => {}
                    serde_json::Value::Array(items) => {
                        for i in items {
                            out.push((
                                k.clone(),
                                scalar(i).ok_or_else(|| {
                                    format!("parameter {k}: nested values are not supported")
                                })?,
                            ));
                        }
                    }
                    other => out.push((
                        k.clone(),
                        scalar(other).ok_or_else(|| {
                            format!("parameter {k}: nested values are not supported")
                        })?,
                    )),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for pair in items {
                match pair {
                    serde_json::Value::Array(kv) if kv.len() == 2 => {
                        let k = scalar(&kv[0]).ok_or("parameter names must be strings")?;
                        if kv[1].is_null() {
                            continue;
                        }
                        let v = scalar(&kv[1]).ok_or_else(|| {
                            format!("parameter {k}: nested values are not supported")
                        })?;
                        out.push((k, v));
                    }
                    _ => return Err("parameters must be (name, value) pairs or a map".into()),
                }
            }
        }
        serde_json::Value::Null => {}
        _ => return Err("parameters must be (name, value) pairs or a map".into()),
    }
    Ok(out)
}
