//! Pagination as an async stream of items, for every common style.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::client::Client;
use crate::error::Error;
use crate::request::RequestBuilder;

/// How the API pages its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStyle {
    /// `?page=N&per_page=M`. Stops on an empty page, a page shorter than `page_size`, or
    /// when the page number reaches the value at `total_pages_pointer`.
    PageNumber {
        /// Name of the page parameter (e.g. `page`).
        page_param: String,
        /// Name of the page-size parameter (e.g. `per_page`), if sent.
        size_param: Option<String>,
        /// Page size to request and to detect a short (last) page.
        page_size: Option<u64>,
        /// Number of the first page (usually 1).
        first_page: u64,
        /// JSON pointer to the total page count in the body (e.g. `/total_pages`).
        total_pages_pointer: Option<String>,
    },
    /// `?offset=N&limit=M`. Stops on an empty or short page.
    OffsetLimit {
        /// Name of the offset parameter.
        offset_param: String,
        /// Name of the limit parameter.
        limit_param: String,
        /// Items per page.
        limit: u64,
    },
    /// RFC 8288 `Link: <…>; rel="next"`. A next link to another origin is refused.
    LinkHeader,
    /// A cursor in the body (JSON pointer) sent back as a query parameter.
    /// Stops when the cursor is missing, null, `false` or empty.
    Cursor {
        /// JSON pointer to the next cursor, e.g. `/meta/next_cursor`.
        cursor_pointer: String,
        /// Query parameter that carries it, e.g. `cursor`.
        cursor_param: String,
    },
    /// A next-page URL in the body (JSON pointer). Another origin is refused.
    NextUrl {
        /// JSON pointer to the next URL, e.g. `/next` or `/links/next`.
        next_pointer: String,
    },
}

impl PageStyle {
    /// `page`/`per_page` paging starting at page 1.
    pub fn page_number(page_param: &str, size_param: &str, page_size: u64) -> Self {
        PageStyle::PageNumber {
            page_param: page_param.into(),
            size_param: Some(size_param.into()),
            page_size: Some(page_size),
            first_page: 1,
            total_pages_pointer: None,
        }
    }
    /// `offset`/`limit` paging.
    pub fn offset_limit(offset_param: &str, limit_param: &str, limit: u64) -> Self {
        PageStyle::OffsetLimit {
            offset_param: offset_param.into(),
            limit_param: limit_param.into(),
            limit,
        }
    }
    /// A cursor at `cursor_pointer`, sent back as `cursor_param`.
    pub fn cursor(cursor_pointer: &str, cursor_param: &str) -> Self {
        PageStyle::Cursor {
            cursor_pointer: cursor_pointer.into(),
            cursor_param: cursor_param.into(),
        }
    }
    /// A next URL at `next_pointer`.
    pub fn next_url(next_pointer: &str) -> Self {
        PageStyle::NextUrl {
            next_pointer: next_pointer.into(),
        }
    }
}

/// What to walk and when to stop.
///
/// ```no_run
/// # async fn demo() -> Result<(), opskit_http::Error> {
/// use futures::TryStreamExt;
/// use opskit_http::{Client, ClientConfig, PageStyle, Paginator};
/// let client = Client::new(ClientConfig::new("https://api.example.com/"))?;
/// let pager = Paginator::new(PageStyle::page_number("page", "per_page", 100))
///     .items_at("/data")
///     .max_items(1_000);
/// let servers: Vec<serde_json::Value> = client.paginate("servers", pager).try_collect().await?;
/// # let _ = servers; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Paginator {
    /// The paging style.
    pub style: PageStyle,
    /// JSON pointer to the items array (`None`: the body itself, or its `items`, `data`,
    /// `results`, `values` or `records` array).
    pub items_pointer: Option<String>,
    /// Stop after this many pages.
    pub max_pages: Option<u64>,
    /// Stop after this many items.
    pub max_items: Option<u64>,
}

impl Paginator {
    /// A paginator with no caps.
    pub fn new(style: PageStyle) -> Self {
        Paginator {
            style,
            items_pointer: None,
            max_pages: None,
            max_items: None,
        }
    }
    /// Items are the array at this JSON pointer.
    pub fn items_at(mut self, pointer: &str) -> Self {
        self.items_pointer = Some(pointer.into());
        self
    }
    /// Cap the number of pages.
    pub fn max_pages(mut self, n: u64) -> Self {
        self.max_pages = Some(n);
        self
    }
    /// Cap the number of items.
    pub fn max_items(mut self, n: u64) -> Self {
        self.max_items = Some(n);
        self
    }
}

struct State {
    template: RequestBuilder,
    pager: Paginator,
    next: Option<RequestBuilder>,
    page_no: u64,
    offset: u64,
    pages: u64,
    items: u64,
    origin: Option<url::Origin>,
    /// Every next URL and cursor the server gave so far: one given twice would page forever.
    seen: std::collections::HashSet<String>,
    /// An error found after a page's items, reported after they are yielded.
    pending: Option<Error>,
}

fn with_param(mut rb: RequestBuilder, name: &str, value: String) -> RequestBuilder {
    rb.query.retain(|(k, _)| k != name);
    rb.query.push((name.to_string(), value));
    rb
}

fn at_url(template: &RequestBuilder, url: &Url) -> RequestBuilder {
    let mut rb = template.clone();
    rb.target = url.to_string();
    rb.query.clear();
    rb
}

pub(crate) fn paginate(
    template: RequestBuilder,
    pager: Paginator,
) -> impl Stream<Item = Result<Value, Error>> + Send + 'static {
    let first = match &pager.style {
        PageStyle::PageNumber {
            page_param,
            size_param,
            page_size,
            first_page,
            ..
        } => {
            let mut rb = with_param(template.clone(), page_param, first_page.to_string());
            if let (Some(sp), Some(sz)) = (size_param, page_size) {
                rb = with_param(rb, sp, sz.to_string());
            }
            rb
        }
        PageStyle::OffsetLimit {
            offset_param,
            limit_param,
            limit,
        } => with_param(
            with_param(template.clone(), offset_param, "0".into()),
            limit_param,
            limit.to_string(),
        ),
        _ => template.clone(),
    };
    let first_page = match &pager.style {
        PageStyle::PageNumber { first_page, .. } => *first_page,
        _ => 0,
    };
    let state = State {
        template,
        pager,
        next: Some(first),
        page_no: first_page,
        offset: 0,
        pages: 0,
        items: 0,
        origin: None,
        seen: std::collections::HashSet::new(),
        pending: None,
    };
    futures::stream::try_unfold(state, |mut st| async move {
        if let Some(e) = st.pending.take() {
            return Err(e);
        }
        let Some(rb) = st.next.take() else {
            return Ok(None);
        };
        if st.pager.max_pages.is_some_and(|m| st.pages >= m)
            || st.pager.max_items.is_some_and(|m| st.items >= m)
        {
            return Ok(None);
        }
        let client = rb.client.clone();
        let (url, headers, body) = client.fetch_json(rb).await?;
        if st.origin.is_none() {
            st.origin = Some(url.origin());
        }
        st.pages += 1;
        let mut items = extract_items(
            &body,
            st.pager.items_pointer.as_deref(),
            &client.redact(&url),
        )?;
        let got = items.len() as u64;
        if let Some(m) = st.pager.max_items {
            let left = m.saturating_sub(st.items);
            items.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        }
        st.items += items.len() as u64;
        match next_request(&mut st, &url, &headers, &body, got) {
            Ok(next) => st.next = next,
            Err(e) => st.pending = Some(e),
        }
        Ok(Some((items, st)))
    })
    .map_ok(|items| futures::stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}

fn next_request(
    st: &mut State,
    url: &Url,
    headers: &HeaderMap,
    body: &Value,
    got: u64,
) -> Result<Option<RequestBuilder>, Error> {
    if got == 0 {
        return Ok(None);
    }
    let same_origin = |next: &Url, origin: &Option<url::Origin>| -> Result<(), Error> {
        if origin.as_ref().is_some_and(|o| *o != next.origin()) {
            return Err(Error::Pagination {
                message: format!(
                    "the next page {} is on another origin than {}; refusing to follow it (credentials would leak)",
                    next.origin().ascii_serialization(),
                    origin
                        .as_ref()
                        .map(|o| o.ascii_serialization())
                        .unwrap_or_default()
                ),
            });
        }
        Ok(())
    };
    Ok(match &st.pager.style {
        PageStyle::PageNumber {
            page_param,
            page_size,
            total_pages_pointer,
            ..
        } => {
            if page_size.is_some_and(|s| got < s) {
                return Ok(None);
            }
            if let Some(p) = total_pages_pointer
                && let Some(total) = body.pointer(p).and_then(as_u64)
                && st.page_no >= total
            {
                return Ok(None);
            }
            st.page_no += 1;
            let mut rb = with_param(st.template.clone(), page_param, st.page_no.to_string());
            if let PageStyle::PageNumber {
                size_param: Some(sp),
                page_size: Some(sz),
                ..
            } = &st.pager.style
            {
                rb = with_param(rb, sp, sz.to_string());
            }
            Some(rb)
        }
        PageStyle::OffsetLimit {
            offset_param,
            limit_param,
            limit,
        } => {
            if got < *limit {
                return Ok(None);
            }
            st.offset += got;
            Some(with_param(
                with_param(st.template.clone(), offset_param, st.offset.to_string()),
                limit_param,
                limit.to_string(),
            ))
        }
        PageStyle::LinkHeader => match next_link(headers, url) {
            None => None,
            Some(next) => {
                same_origin(&next, &st.origin)?;
                repeats(&mut st.seen, "next link", redacted(&next))?;
                Some(at_url(&st.template, &next))
            }
        },
        PageStyle::Cursor {
            cursor_pointer,
            cursor_param,
        } => match body.pointer(cursor_pointer) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                repeats(&mut st.seen, "cursor", s.clone())?;
                Some(with_param(st.template.clone(), cursor_param, s.clone()))
            }
            Some(Value::Number(n)) => {
                repeats(&mut st.seen, "cursor", n.to_string())?;
                Some(with_param(st.template.clone(), cursor_param, n.to_string()))
            }
            Some(other) => {
                return Err(Error::Pagination {
                    message: format!(
                        "the cursor at {cursor_pointer} is not a string or number: {other}"
                    ),
                });
            }
        },
        PageStyle::NextUrl { next_pointer } => match body.pointer(next_pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                let next = url.join(s).map_err(|e| Error::Pagination {
                    message: format!("the next URL {s:?} at {next_pointer} is invalid: {e}"),
                })?;
                same_origin(&next, &st.origin)?;
                repeats(&mut st.seen, "next URL", redacted(&next))?;
                Some(at_url(&st.template, &next))
            }
            Some(other) => {
                return Err(Error::Pagination {
                    message: format!("the next URL at {next_pointer} is not a string: {other}"),
                });
            }
        },
    })
}

/// An error when the server gives the same next link or cursor a second time.
fn repeats(
    seen: &mut std::collections::HashSet<String>,
    what: &str,
    value: String,
) -> Result<(), Error> {
    if seen.insert(format!("{what}\u{0}{value}")) {
        return Ok(());
    }
    Err(Error::Pagination {
        message: format!(
            "the server gave the same {what} twice ({}); stopping instead of paging forever",
            short_text(&value)
        ),
    })
}

/// A next URL as it may appear in an error (well-known secret parameters redacted).
fn redacted(u: &Url) -> String {
    crate::observe::redact_url(u, &[])
}

fn short_text(s: &str) -> String {
    if s.len() > 120 {
        format!("{}…", &s[..s.floor_char_boundary(120)])
    } else {
        s.to_string()
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn extract_items(body: &Value, pointer: Option<&str>, url: &str) -> Result<Vec<Value>, Error> {
    let arr = match pointer {
        Some(p) => body.pointer(p).ok_or_else(|| Error::Pagination {
            message: format!("{url}: no value at JSON pointer {p}"),
        })?,
        None => {
            if body.is_array() {
                body
            } else {
                ["items", "data", "results", "values", "records"]
                    .iter()
                    .find_map(|k| body.get(k).filter(|v| v.is_array()))
                    .ok_or_else(|| Error::Pagination {
                        message: format!(
                            "{url}: the page is not an array and has no items/data/results array; give the items' JSON pointer"
                        ),
                    })?
            }
        }
    };
    match arr {
        Value::Array(a) => Ok(a.clone()),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::Pagination {
            message: format!("{url}: the items are not an array: {}", short(other)),
        }),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.floor_char_boundary(80)])
    } else {
        s
    }
}

/// The `rel="next"` target of RFC 8288 `Link` headers, resolved against `base`.
pub fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(http::header::LINK) {
        let Ok(s) = value.to_str() else { continue };
        for link in split_links(s) {
            let link = link.trim();
            let Some(end) = link.find('>') else { continue };
            if !link.starts_with('<') {
                continue;
            }
            let target = &link[1..end];
            let params = &link[end + 1..];
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

/// Split a Link header on commas that are outside `<…>` and quotes.
fn split_links(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_angle, mut in_quote, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl Client {
    /// One page: a GET whose status must be a success and whose body must be JSON.
    pub(crate) async fn fetch_json(
        &self,
        rb: RequestBuilder,
    ) -> Result<(Url, HeaderMap, serde_json::Value), Error> {
        let resp = rb.send().await?.error_for_status().await?;
        let url = resp.url().clone();
        let headers = resp.headers().clone();
        let shown = resp.shown_url.clone();
        let body: Bytes = resp.bytes().await?;
        let v = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            url: shown,
            message: format!("page is not JSON: {e}"),
        })?;
        Ok((url, headers, v))
    }
}
