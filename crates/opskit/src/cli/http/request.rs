//! Turns the URL, the request items and the body flags into one request description that the
//! engine sends, `--offline` prints and `--curl` spells out.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use url::Url;

use super::items::Item;

/// How field items are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyMode {
    /// `field=value` become a JSON object (the default).
    #[default]
    Json,
    /// `--form`: `application/x-www-form-urlencoded` (multipart once a file item appears).
    Form,
    /// `--multipart`: always `multipart/form-data`.
    Multipart,
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text {
        name: String,
        value: String,
    },
    File {
        name: String,
        path: PathBuf,
        mime: Option<String>,
    },
}

/// The request body.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Body {
    #[default]
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    Multipart(Vec<Part>),
    Raw(Vec<u8>),
}

/// A request before auth and engine layers.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    pub url: Url,
    /// Headers in order; a later entry with the same name replaces an earlier one.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl RequestSpec {
    /// Sets (replaces) a header, case-insensitively.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Sets a header only when it is not already present.
    pub fn default_header(&mut self, name: &str, value: &str) {
        if !self.has_header(name) {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` the body implies, when the user did not set one.
    pub fn implied_content_type(&self) -> Option<&'static str> {
        match self.body {
            Body::Json(_) => Some("application/json"),
            Body::Form(_) => Some("application/x-www-form-urlencoded"),
            // the multipart boundary is chosen by the transport
            Body::Multipart(_) | Body::Raw(_) | Body::None => None,
        }
    }

    /// The body as bytes to send (`None` for no body and for multipart, which the transport
    /// encodes).
    pub fn body_bytes(&self) -> Option<Vec<u8>> {
        match &self.body {
            Body::None | Body::Multipart(_) => None,
            Body::Json(v) => Some(v.to_string().into_bytes()),
            Body::Form(pairs) => Some(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish()
                    .into_bytes(),
            ),
            Body::Raw(b) => Some(b.clone()),
        }
    }

    /// The body as bytes, for printing (`--offline`, `-v`) — files of multipart bodies are named,
    /// not read.
    pub fn body_preview(&self) -> Option<String> {
        match &self.body {
            Body::None => None,
            Body::Json(v) => Some(v.to_string()),
            Body::Form(pairs) => Some(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish(),
            ),
            Body::Multipart(parts) => Some(
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Text { name, value } => format!("--part {name}={value}"),
                        Part::File { name, path, .. } => {
                            format!("--part {name}=<file {}>", path.display())
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Body::Raw(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

/// Why a request could not be built. All of these are usage errors.
#[derive(Debug)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// Resolves the URL the user typed against an optional profile base URL.
///
/// - `http://…` / `https://…`: used as is;
/// - `/path` or `path` with a base URL: appended to the base (its path is kept: base
///   `https://h/api/v1` + `/servers` = `https://h/api/v1/servers`);
/// - `:8080/path`: `http://localhost:8080/path` (HTTPie's shorthand);
/// - anything else without a scheme: `http://` is prepended.
pub fn resolve_url(raw: &str, base: Option<&Url>) -> Result<Url, BuildError> {
    let bad = |e: url::ParseError| BuildError(format!("bad URL `{raw}`: {e}"));
    if raw.starts_with("http://") || raw.starts_with("https://") {
        return Url::parse(raw).map_err(bad);
    }
    if raw.contains("://") {
        return Err(BuildError(format!(
            "bad URL `{raw}`: only http:// and https:// are supported"
        )));
    }
    if let Some(base) = base {
        let mut joined = base.as_str().trim_end_matches('/').to_owned();
        if !raw.is_empty() {
            if !raw.starts_with('/') && !raw.starts_with('?') {
                joined.push('/');
            }
            joined.push_str(raw);
        }
        // keep the base's query when the relative part adds none
        let mut url = Url::parse(&joined).map_err(bad)?;
        if url.query().is_none() && base.query().is_some() {
            url.set_query(base.query());
        }
        return Ok(url);
    }
    if let Some(rest) = raw.strip_prefix(':') {
        return Url::parse(&format!("http://localhost:{rest}")).map_err(bad);
    }
    if raw.starts_with('/') {
        return Err(BuildError(format!(
            "`{raw}` is a relative URL but no profile with a base_url is selected"
        )));
    }
    Url::parse(&format!("http://{raw}")).map_err(bad)
}

/// Where a raw body (`@-` or auto-read stdin) comes from.
pub fn read_body_file(path: &Path) -> Result<Vec<u8>, BuildError> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| BuildError(format!("cannot read the body from stdin: {e}")))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| {
            BuildError(format!(
                "cannot read the body file `{}`: {e}",
                path.display()
            ))
        })
    }
}

/// Applies parsed items to a request. `stdin_body` is the body read from a piped stdin when no
/// body item was given.
pub fn apply_items(
    spec: &mut RequestSpec,
    items: Vec<Item>,
    mode: BodyMode,
    raw_body: Option<Vec<u8>>,
) -> Result<(), BuildError> {
    let mut fields: Vec<(String, Value)> = Vec::new();
    let mut files: Vec<Part> = Vec::new();
    let mut raw = raw_body;
    // the file a raw `@path` body came from (its extension may say its type)
    let mut raw_path: Option<PathBuf> = None;
    for item in items {
        match item {
            Item::Header { name, value } => spec.headers.push((name, value)),
            Item::UnsetHeader { name } => {
                spec.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            }
            Item::EmptyHeader { name } => spec.headers.push((name, String::new())),
            Item::Query { name, value } => {
                spec.url.query_pairs_mut().append_pair(&name, &value);
            }
            Item::Data { name, value } => fields.push((name, Value::String(value))),
            Item::Json { name, value } => fields.push((name, value)),
            Item::File { name, path, mime } => files.push(Part::File { name, path, mime }),
            Item::RawBody { path } => {
                if raw.is_some() {
                    return Err(BuildError(
                        "only one raw body may be given (`@file`, `@-` or piped stdin)".into(),
                    ));
                }
                raw = Some(read_body_file(&path)?);
                raw_path = Some(path);
            }
        }
    }
    // drop an empty `?` left by a query item-less URL
    if spec.url.query() == Some("") {
        spec.url.set_query(None);
    }
    if raw.is_some() && (!fields.is_empty() || !files.is_empty()) {
        return Err(BuildError(
            "a raw body (`@file`, `@-` or piped stdin) cannot be combined with field items; \
             use --ignore-stdin if stdin is not meant as the body"
                .into(),
        ));
    }
    if raw.is_some() && mode == BodyMode::Multipart {
        return Err(BuildError(
            "a raw body (`@file`, `@-` or piped stdin) cannot be sent with --multipart; \
             give files as `field@path` items, or use --ignore-stdin if stdin is not meant \
             as the body"
                .into(),
        ));
    }
    spec.body = if let Some(bytes) = raw {
        spec.default_header("Content-Type", raw_content_type(raw_path.as_deref(), mode));
        Body::Raw(bytes)
    } else if !files.is_empty() || mode == BodyMode::Multipart {
        let mut parts = Vec::new();
        for (name, value) in fields {
            parts.push(Part::Text {
                name,
                value: form_value(value),
            });
        }
        parts.extend(files);
        if parts.is_empty() {
            Body::None
        } else {
            Body::Multipart(parts)
        }
    } else if fields.is_empty() {
        Body::None
    } else if mode == BodyMode::Form {
        Body::Form(
            fields
                .into_iter()
                .map(|(n, v)| (n, form_value(v)))
                .collect(),
        )
    } else {
        let mut obj = Map::new();
        for (name, value) in fields {
            match obj.get_mut(&name) {
                // a repeated field collects its values into an array, as HTTPie does
                Some(Value::Array(list)) => list.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    obj.insert(name, value);
                }
            }
        }
        Body::Json(Value::Object(obj))
    };
    Ok(())
}

/// The `Content-Type` of a raw body the user gave none for: a form with `--form` (xh), else the
/// type a `@file`'s extension names (HTTPie), else JSON, the default mode (xh and HTTPie).
pub fn raw_content_type(path: Option<&Path>, mode: BodyMode) -> &'static str {
    if mode == BodyMode::Form {
        return "application/x-www-form-urlencoded";
    }
    let ext = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("xml") => "application/xml",
        Some("txt" | "text" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("yaml" | "yml") => "application/yaml",
        Some("toml") => "application/toml",
        Some("ndjson" | "jsonl") => "application/x-ndjson",
        Some("pem" | "crt") => "application/x-pem-file",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("bin") => "application/octet-stream",
        _ => "application/json",
    }
}

fn form_value(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::http::items::parse_all;
    use serde_json::json;

    fn spec(url: &str) -> RequestSpec {
        RequestSpec {
            method: "POST".into(),
            url: Url::parse(url).unwrap(),
            headers: vec![("Accept".into(), "application/json".into())],
            body: Body::None,
        }
    }

    #[test]
    fn fields_become_json_and_repeats_become_arrays() {
        let mut s = spec("http://h/x");
        let items = parse_all(&["name=web", "port:=80", "tag=a", "tag=b", "q==1"]).unwrap();
        apply_items(&mut s, items, BodyMode::Json, None).unwrap();
        assert_eq!(
            s.body,
            Body::Json(json!({"name": "web", "port": 80, "tag": ["a", "b"]}))
        );
        assert_eq!(s.url.as_str(), "http://h/x?q=1");
    }

    #[test]
    fn form_and_multipart() {
        let mut s = spec("http://h/x");
        apply_items(
            &mut s,
            parse_all(&["a=1", "b:=true"]).unwrap(),
            BodyMode::Form,
            None,
        )
        .unwrap();
        assert_eq!(
            s.body,
            Body::Form(vec![("a".into(), "1".into()), ("b".into(), "true".into())])
        );
        let mut s = spec("http://h/x");
        apply_items(
            &mut s,
            parse_all(&["a=1", "f@/etc/hostname"]).unwrap(),
            BodyMode::Json,
            None,
        )
        .unwrap();
        assert!(matches!(s.body, Body::Multipart(ref p) if p.len() == 2));
    }

    #[test]
    fn unset_header_removes_a_default() {
        let mut s = spec("http://h/x");
        apply_items(
            &mut s,
            parse_all(&["Accept:"]).unwrap(),
            BodyMode::Json,
            None,
        )
        .unwrap();
        assert!(!s.has_header("accept"));
    }

    #[test]
    fn raw_body_and_fields_conflict() {
        let mut s = spec("http://h/x");
        let e = apply_items(
            &mut s,
            parse_all(&["a=1"]).unwrap(),
            BodyMode::Json,
            Some(b"x".to_vec()),
        )
        .unwrap_err();
        assert!(e.0.contains("cannot be combined"));
    }

    #[test]
    fn urls_resolve_against_a_base() {
        let base = Url::parse("https://cmdb.example/api/v1").unwrap();
        assert_eq!(
            resolve_url("/hosts", Some(&base)).unwrap().as_str(),
            "https://cmdb.example/api/v1/hosts"
        );
        assert_eq!(
            resolve_url("hosts/1", Some(&base)).unwrap().as_str(),
            "https://cmdb.example/api/v1/hosts/1"
        );
        assert_eq!(
            resolve_url("http://other/x", Some(&base)).unwrap().as_str(),
            "http://other/x"
        );
        assert_eq!(
            resolve_url(":8080/x", None).unwrap().as_str(),
            "http://localhost:8080/x"
        );
        assert_eq!(
            resolve_url("127.0.0.1:9/x", None).unwrap().as_str(),
            "http://127.0.0.1:9/x"
        );
        assert!(
            resolve_url("/x", None)
                .unwrap_err()
                .0
                .contains("no profile")
        );
        assert!(resolve_url("ftp://x", None).is_err());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
