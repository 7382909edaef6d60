//! `opskit http METHOD --input FILE [ITEM]...`: the same request to every URL of a list,
//! `--concurrency` at a time, one result line per URL (ndjson by default) as each finishes, or in
//! input order with `--ordered`.
//!
//! Every URL goes through one client built from the command's flags and profile (timeouts,
//! retries, auth, headers, rate limit, TLS, proxy), so connections are reused. Memory stays
//! bounded whatever the length of the list: a reader thread hands the lines over a channel of
//! `--concurrency` slots, at most `--concurrency` requests (or finished results waiting for
//! their turn under `--ordered`) are held, bodies are counted as they stream and dropped.
//!
//! A line that is not a URL is a result of its own (`bad_url`, with its line number); the rest
//! still run. The exit code is 0 when every URL answered (2xx/3xx under `--check-status`), else
//! the first that applies of 2 (a line is not a URL), 3 (could not connect, TLS, timeout), 5, 4
//! (4xx/5xx under `--check-status`), 1.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use opskit_http as engine;
use serde_json::{Value, json};

use super::args::ShortcutArgs;
use super::plan::{self, Parts, Plan};
use super::render::OutputFormat;
use super::{exchange, profile, request, show};
use crate::exit::{Failure, code};
use crate::output::{Format, Sink, plural};

/// `--concurrency` when not given.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// The largest `--concurrency` accepted (each request holds a socket).
pub const MAX_CONCURRENCY: usize = 1024;
/// The longest line read from the list; a longer one is reported and skipped.
const MAX_LINE: usize = 64 * 1024;
/// The URL the plan is built for: absolute, so that the config file's `default_profile` is not
/// applied to a list that may hold other origins (a profile named with --profile is).
const PLACEHOLDER: &str = "http://opskit.invalid/";
/// The columns of `--output csv|table`.
const COLUMNS: &[&str] = &["line", "url", "status", "latency_ms", "size", "error"];

/// Runs `--input`; returns the exit code.
pub fn run(method: &str, mut a: ShortcutArgs) -> anyhow::Result<u8> {
    let input = a.opts.input.take().unwrap_or_default();
    let concurrency = a.opts.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(Failure::usage(format!(
            "--concurrency {concurrency}: give a number from 1 to {MAX_CONCURRENCY}"
        ))
        .into());
    }
    let ordered = a.opts.ordered;
    let format = match a.opts.format {
        None | Some(OutputFormat::Ndjson) => Format::Ndjson,
        Some(OutputFormat::Json) => Format::Json,
        Some(OutputFormat::Csv) => Format::Csv,
        Some(OutputFormat::Table) => Format::Table,
        Some(OutputFormat::Raw) => {
            return Err(Failure::usage("--output raw does not apply to --input")
                .with_hint("--input prints one result per URL: --output ndjson (default), json, csv or table")
                .into());
        }
    };
    let from_stdin = input.as_os_str() == "-";
    if from_stdin {
        // stdin holds the URLs, never a request body
        a.opts.ignore_stdin = true;
    }
    // every positional word is a request item: no URL comes before them
    let mut items = Vec::with_capacity(a.items.len() + 1);
    if !a.url.is_empty() {
        items.push(a.url);
    }
    items.extend(a.items);
    let mut plan = plan::build(method, PLACEHOLDER, &items, a.opts)?;
    // no head or body printing per URL: the result lines are the output
    plan.parts = Parts {
        req_headers: false,
        req_body: false,
        resp_headers: false,
        resp_body: false,
    };
    let base = match &plan.profile_name {
        Some(name) => profile::select(Some(name))
            .ok()
            .flatten()
            .and_then(|(_, p)| p.base_url),
        None => None,
    };
    // query parameters of the items (`name==value`) and of the profile go to every URL
    let query: Vec<(String, String)> = plan.spec.url.query_pairs().into_owned().collect();
    let reader: Box<dyn BufRead + Send> = if from_stdin {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&input).map_err(|e| {
            Failure::usage(format!("--input {}: {e}", input.display()))
                .with_hint("give a file with one URL per line, or - to read them from stdin")
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let method = engine::Method::from_bytes(plan.spec.method.as_bytes())
        .map_err(|_| Failure::usage(format!("bad HTTP method `{}`", plan.spec.method)))?;
    let job = Job {
        method,
        concurrency,
        ordered,
        format,
        base,
        query,
        shown_input: if from_stdin {
            "stdin".to_owned()
        } else {
            input.display().to_string()
        },
    };
    let max_time = plan.max_time;
    crate::block_on(async move {
        let limit = async {
            match max_time {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = drive(plan, job, reader) => r,
            _ = limit => Err(Failure::new(
                code::NETWORK,
                format!(
                    "--max-time {} reached before every URL was done",
                    super::values::Span(max_time.unwrap_or_default())
                ),
            )
            .with_hint("the lines printed so far are complete results; raise --max-time or --concurrency")
            .into()),
            _ = tokio::signal::ctrl_c() => {
                Err(Failure::new(code::INTERRUPTED, "interrupted").into())
            }
        }
    })?
}

/// What `--input` needs besides the plan.
struct Job {
    method: engine::Method,
    concurrency: usize,
    ordered: bool,
    format: Format,
    /// The named profile's base URL, for relative lines.
    base: Option<url::Url>,
    query: Vec<(String, String)>,
    shown_input: String,
}

/// One line of the list, as the reader thread hands it over.
enum Line {
    Url {
        n: u64,
        text: String,
    },
    Bad {
        n: u64,
        message: String,
    },
    /// The list could not be read further.
    Broken {
        n: u64,
        message: String,
    },
}

/// One result line.
struct Row {
    value: Value,
    /// The exit code this result asks for (0 when it is a success).
    code: u8,
    kind: Option<&'static str>,
}

impl Row {
    fn ok(line: u64, url: &str, status: u16, latency: Duration, size: u64) -> Row {
        Row {
            value: json!({
                "line": line,
                "url": url,
                "status": status,
                "latency_ms": ms(latency),
                "size": size,
                "error": null,
            }),
            code: code::OK,
            kind: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn failed(
        line: u64,
        url: &str,
        status: Option<u16>,
        latency: Option<Duration>,
        size: Option<u64>,
        kind: &'static str,
        message: &str,
        exit: u8,
    ) -> Row {
        Row {
            value: json!({
                "line": line,
                "url": url,
                "status": status,
                "latency_ms": latency.map(ms),
                "size": size,
                "error": {"kind": kind, "message": message},
            }),
            code: exit,
            kind: Some(kind),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Results in completion order, or in input order with `--ordered`.
enum Pending {
    Unordered(FuturesUnordered<BoxFuture<'static, Row>>),
    Ordered(FuturesOrdered<BoxFuture<'static, Row>>),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Unordered(f) => f.len(),
            Pending::Ordered(f) => f.len(),
        }
    }
    fn push(&mut self, fut: BoxFuture<'static, Row>) {
        match self {
            Pending::Unordered(f) => f.push(fut),
            Pending::Ordered(f) => f.push_back(fut),
        }
    }
    async fn next(&mut self) -> Option<Row> {
        match self {
            Pending::Unordered(f) => f.next().await,
            Pending::Ordered(f) => f.next().await,
        }
    }
}

/// Counts of the results, for the exit code and the closing message.
#[derive(Default)]
struct Tally {
    total: u64,
    failed: u64,
    code: u8,
    kinds: Vec<(&'static str, u64)>,
    first: Option<String>,
}

impl Tally {
    fn add(&mut self, row: &Row) {
        self.total += 1;
        let Some(kind) = row.kind else {
            return;
        };
        self.failed += 1;
        match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.kinds.push((kind, 1)),
        }
        // the first that applies of 2, 3, 5, 4, 1
        let rank = |c: u8| match c {
            code::USAGE => 5,
            code::NETWORK => 4,
            code::HTTP_5XX => 3,
            code::HTTP_4XX => 2,
            code::OK => 0,
            _ => 1,
        };
        if rank(row.code) > rank(self.code) {
            self.code = row.code;
        }
        if self.first.is_none() {
            let line = row.value["line"].as_u64().unwrap_or(0);
            let msg = row.value["error"]["message"].as_str().unwrap_or("");
            self.first = Some(if msg.starts_with("line ") {
                msg.to_owned()
            } else {
                format!("line {line}: {msg}")
            });
        }
    }
}

async fn drive(plan: Plan, job: Job, reader: Box<dyn BufRead + Send>) -> anyhow::Result<u8> {
    let printer = Arc::new(exchange::HeadPrinter::new(&plan));
    let client = engine::Client::new(exchange::client_config(&plan, printer)?)
        .map_err(|e| exchange::failure(e, plan.check_status))?;
    let extra = show::extra_sensitive(&plan);
    let body_timeout = plan.timeout.unwrap_or(engine::Timeouts::default().request);
    let check_status = plan.check_status;
    let mut plan = plan;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Line>(job.concurrency);
    // a thread, not the blocking pool: a read of a silent stdin must not hold the runtime's
    // shutdown when the command ends (Ctrl-C, --max-time, a closed stdout)
    std::thread::Builder::new()
        .name("opskit-input".into())
        .spawn(move || read_lines(reader, tx))
        .map_err(|e| Failure::new(code::FAILURE, format!("cannot start the reader: {e}")))?;

    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let color = job.format == Format::Json && crate::output::color_stdout();
    let mut sink = Sink::new(job.format, color, true, tty, crate::output::stdout());
    if matches!(job.format, Format::Csv | Format::Table) {
        sink = sink.with_columns(COLUMNS);
    }
    let flat = matches!(job.format, Format::Csv | Format::Table);

    let mut pending = if job.ordered {
        Pending::Ordered(FuturesOrdered::new())
    } else {
        Pending::Unordered(FuturesUnordered::new())
    };
    let mut tally = Tally::default();
    let mut eof = false;
    let mut broken: Option<String> = None;
    loop {
        if eof && pending.len() == 0 {
            break;
        }
        let has_room = !eof && pending.len() < job.concurrency;
        tokio::select! {
            // results first: each one frees a slot
            biased;
            Some(row) = pending.next(), if pending.len() > 0 => {
                tally.add(&row);
                let value = if flat { flatten_error(row.value) } else { row.value };
                sink.push(vec![value])?;
            }
            line = rx.recv(), if has_room => match line {
                None => eof = true,
                Some(Line::Broken { n, message }) => {
                    eof = true;
                    broken = Some(format!("cannot read {} at line {n}: {message}", job.shown_input));
                }
                Some(Line::Bad { n, message }) => {
                    let row = Row::failed(n, "", None, None, None, "bad_line", &format!("line {n}: {message}"), code::USAGE);
                    pending.push(Box::pin(async move { row }));
                }
                Some(Line::Url { n, text }) => match target(&text, &job) {
                    Err(message) => {
                        let shown = crate::peer_text::line(&text).into_owned();
                        let row = Row::failed(n, &shown, None, None, None, "bad_url", &format!("line {n}: {message}"), code::USAGE);
                        pending.push(Box::pin(async move { row }));
                    }
                    Ok(url) => {
                        let shown = engine::redact_url(&url, &extra);
                        plan.spec.url = url;
                        let rb = exchange::builder(&client, job.method.clone(), &plan).await?;
                        let task = tokio::spawn(one(rb, n, shown.clone(), check_status, body_timeout));
                        pending.push(Box::pin(async move {
                            task.await.unwrap_or_else(|e| {
                                Row::failed(n, &shown, None, None, None, "other", &format!("the request task failed: {e}"), code::FAILURE)
                            })
                        }));
                    }
                },
            },
        }
    }
    let dropped = sink.finish()?;
    if !dropped.is_empty() {
        eprintln!("warning: columns left out: {}", dropped.join(", "));
    }
    if let Some(message) = broken {
        return Err(Failure::new(code::FAILURE, message).into());
    }
    if tally.total == 0 {
        eprintln!("warning: {} holds no URL", job.shown_input);
        return Ok(code::OK);
    }
    if tally.failed == 0 {
        return Ok(code::OK);
    }
    let kinds: Vec<String> = tally
        .kinds
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    Err(Failure::new(
        tally.code,
        format!(
            "{} of {} failed ({}); first: {}",
            tally.failed,
            plural(tally.total, "URL", "URLs"),
            kinds.join(", "),
            tally.first.unwrap_or_default()
        ),
    )
    .with_hint("each result line has the error of its URL: jq 'select(.error)' lists them")
    .into())
}

/// The URL of one line: absolute, `:PORT/path`, `host/path`, or relative to the named
/// profile's base URL; with the items' and the profile's query parameters.
fn target(text: &str, job: &Job) -> Result<url::Url, String> {
    let mut url = request::resolve_url(text, job.base.as_ref()).map_err(|e| e.0)?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("bad URL `{text}`: no host"));
    }
    let missing: Vec<&(String, String)> = job
        .query
        .iter()
        .filter(|(k, _)| !url.query_pairs().any(|(have, _)| have == k.as_str()))
        .collect();
    if !missing.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in missing {
            pairs.append_pair(k, v);
        }
    }
    Ok(url)
}

/// Sends one request and reads its body (counted, not kept) under the attempt's deadline.
async fn one(
    rb: engine::RequestBuilder,
    line: u64,
    url: String,
    check_status: bool,
    body_timeout: Duration,
) -> Row {
    let start = Instant::now();
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return engine_failure(line, &url, None, start.elapsed(), None, e),
    };
    let status = resp.status();
    let mut size: u64 = 0;
    let mut chunks = Box::pin(resp.chunks());
    let read = tokio::time::timeout(body_timeout, async {
        while let Some(chunk) = chunks.next().await {
            size += chunk?.len() as u64;
        }
        Ok::<(), engine::Error>(())
    })
    .await;
    let latency = start.elapsed();
    match read {
        Err(_) => Row::failed(
            line,
            &url,
            Some(status.as_u16()),
            Some(latency),
            Some(size),
            "timeout",
            &format!(
                "the body did not arrive within {} (--timeout)",
                super::values::Span(body_timeout)
            ),
            code::NETWORK,
        ),
        Ok(Err(e)) => engine_failure(line, &url, Some(status), latency, Some(size), e),
        Ok(Ok(())) if check_status && (status.is_client_error() || status.is_server_error()) => {
            let (kind, exit) = if status.is_client_error() {
                ("http_4xx", code::HTTP_4XX)
            } else {
                ("http_5xx", code::HTTP_5XX)
            };
            Row::failed(
                line,
                &url,
                Some(status.as_u16()),
                Some(latency),
                Some(size),
                kind,
                &format!("HTTP {status}"),
                exit,
            )
        }
        Ok(Ok(())) => Row::ok(line, &url, status.as_u16(), latency, size),
    }
}

/// A result for an engine error: its kind, its message in the binary's words, its exit code.
fn engine_failure(
    line: u64,
    url: &str,
    status: Option<engine::StatusCode>,
    latency: Duration,
    size: Option<u64>,
    e: engine::Error,
) -> Row {
    let kind = match e.root() {
        engine::Error::Tls { .. } => "tls",
        _ if e.is_timeout() => "timeout",
        _ if e.is_connection() => "connect",
        engine::Error::Redirect { .. } => "redirect",
        engine::Error::BodyTooLarge { .. } => "body_too_large",
        engine::Error::Usage { .. } | engine::Error::Config { .. } => "usage",
        engine::Error::Auth { .. } => "auth",
        _ => "other",
    };
    let status = status.or_else(|| e.status());
    let failure = exchange::failure(e, false);
    let (message, exit) = match failure.downcast_ref::<Failure>() {
        Some(f) => (f.message.clone(), f.code),
        None => (failure.to_string(), code::FAILURE),
    };
    Row::failed(
        line,
        url,
        status.map(|s| s.as_u16()),
        Some(latency),
        size,
        kind,
        &message,
        exit,
    )
}

/// For csv and table: the error as one `kind: message` cell.
fn flatten_error(mut v: Value) -> Value {
    if let Some(e) = v.get("error").filter(|e| e.is_object()) {
        let text = format!(
            "{}: {}",
            e["kind"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
        v["error"] = Value::String(text);
    }
    v
}

/// Reads the list line by line (bounded: at most [`MAX_LINE`] bytes of a line are held) and
/// hands the URLs over; blank lines and `#` comments are skipped. Ends when the list ends, the
/// receiver is gone, or a read fails.
fn read_lines(mut reader: Box<dyn BufRead + Send>, tx: tokio::sync::mpsc::Sender<Line>) {
    let mut buf = Vec::with_capacity(256);
    let mut n: u64 = 0;
    loop {
        n += 1;
        buf.clear();
        let read = Read::take(&mut reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf);
        let line = match read {
            Ok(0) => return,
            Ok(_) if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') => {
                if let Err(e) = skip_line(&mut reader) {
                    let _ = tx.blocking_send(Line::Broken {
                        n,
                        message: e.to_string(),
                    });
                    return;
                }
                Line::Bad {
                    n,
                    message: format!("longer than {} KiB; skipped", MAX_LINE / 1024),
                }
            }
            Ok(_) => match std::str::from_utf8(&buf) {
                Err(_) => Line::Bad {
                    n,
                    message: "not UTF-8 text".into(),
                },
                Ok(text) => {
                    let t = text.trim();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                    Line::Url {
                        n,
                        text: t.to_owned(),
                    }
                }
            },
            Err(e) => Line::Broken {
                n,
                message: e.to_string(),
            },
        };
        let last = matches!(line, Line::Broken { .. });
        if tx.blocking_send(line).is_err() || last {
            return;
        }
    }
}

/// Reads past the end of the current line without keeping it.
fn skip_line(reader: &mut Box<dyn BufRead + Send>) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let len = buf.len();
                reader.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(base: Option<&str>, query: &[(&str, &str)]) -> Job {
        Job {
            method: engine::Method::GET,
            concurrency: 4,
            ordered: false,
            format: Format::Ndjson,
            base: base.map(|b| url::Url::parse(b).unwrap()),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            shown_input: "test".into(),
        }
    }

    #[test]
    fn lines_become_urls_with_the_items_query() {
        let j = job(None, &[("v", "1")]);
        let u = target("http://127.0.0.1:9/health?v=2", &j).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9/health?v=2");
        let u = target(":8080/x", &j).unwrap();
        assert_eq!(u.as_str(), "http://localhost:8080/x?v=1");
        assert!(target("ftp://example.com/", &j).is_err());
        assert!(target("http://exa mple.com/", &j).is_err());
        assert!(target("/relative", &j).is_err());
        let j = job(Some("https://api.example.com/v1"), &[]);
        let u = target("/health", &j).unwrap();
        assert_eq!(u.as_str(), "https://api.example.com/v1/health");
    }

    #[test]
    fn long_lines_are_skipped_and_comments_ignored() {
        let mut text = String::from("# list\n\nhttp://a/\n");
        text.push_str(&"x".repeat(MAX_LINE + 10));
        text.push_str("\nhttp://b/\n");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        read_lines(Box::new(std::io::Cursor::new(text.into_bytes())), tx);
        let mut got = vec![];
        while let Ok(l) = rx.try_recv() {
            got.push(match l {
                Line::Url { n, text } => format!("{n} {text}"),
                Line::Bad { n, .. } => format!("{n} bad"),
                Line::Broken { n, .. } => format!("{n} broken"),
            });
        }
        assert_eq!(got, ["3 http://a/", "4 bad", "5 http://b/"]);
    }
}
