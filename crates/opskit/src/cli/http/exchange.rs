//! Sending the planned request through the `opskit-http` engine (cache → rate limit → retry →
//! auth → transport) and handing the result to the renderers: one response, a stream of paged
//! items, or a download to disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use opskit_http as engine;
use serde_json::Value;

use super::filter::Filter;
use super::plan::{AuthPlan, PagePlan, Parts, Plan};
use super::profile::{AuthConfig, KeyLocation};
use super::render::OutputFormat;
use super::request::{Body, Part};
use super::show;
use super::values::PageStyle;
use crate::exit::{Failure, code};
use crate::output::plural;

/// Sends the request and writes the outcome; returns the exit code.
pub async fn run(plan: Plan) -> anyhow::Result<u8> {
    let printer = Arc::new(HeadPrinter::new(&plan));
    let client = engine::Client::new(client_config(&plan, printer.clone())?)
        .map_err(|e| failure(e, plan.check_status))?;
    let method = engine::Method::from_bytes(plan.spec.method.as_bytes())
        .map_err(|_| Failure::usage(format!("bad HTTP method `{}`", plan.spec.method)))?;
    if let Some(path) = &plan.out_file
        && !plan.overwrite
        && !plan.resume
        && path.symlink_metadata().is_ok()
    {
        // checked before sending, so nothing is downloaded for nothing
        return Err(refuse_overwrite(path).into());
    }

    if plan.download {
        return download(&client, &plan).await;
    }
    let rb = builder(&client, method, &plan).await?;
    if let Some(pages) = &plan.paginate {
        return paginate(rb, &plan, pages).await;
    }

    let resp = rb.send().await.map_err(|e| failure(e, plan.check_status))?;
    if let Some(s) = &plan.session {
        s.absorb(resp.url(), resp.headers());
    }
    let status = resp.status();
    let attempts = resp.attempts();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let shown_url = engine::redact_url(resp.url(), &show::extra_sensitive(&plan));
    let resp_head = (status, resp.headers().clone());
    if plan.max_redirects == Some(0)
        && status.is_redirection()
        && !plan.parts.resp_headers
        && let Some(loc) = resp.headers().get("location")
    {
        // the redirect is the answer (--no-follow); its body is often empty, so say where it goes
        eprintln!(
            "HTTP {status} → {} (not followed: --no-follow)",
            crate::peer_text::line(&String::from_utf8_lossy(loc.as_bytes()))
        );
    }
    if plan.parts.resp_body {
        if streams(&plan, &content_type) {
            // bytes out as they arrive: memory stays flat whatever the size
            stream_body(&plan, &content_type, resp).await?;
        } else {
            // pretty JSON, --filter, csv/table/ndjson need the whole body: capped (--max-body)
            let body = resp
                .bytes()
                .await
                .map_err(|e| failure(e, plan.check_status))?;
            write_body(&plan, &content_type, &body)?;
        }
    }
    let after = match retry_after_over_limit(&plan, &resp_head) {
        Some(why) => format!(
            " (gave up after {}: {why})",
            plural(u64::from(attempts), "attempt", "attempts")
        ),
        None if attempts > 1 => format!(
            " (gave up after {})",
            plural(u64::from(attempts), "attempt", "attempts")
        ),
        None => String::new(),
    };
    if plan.check_status && (status.is_client_error() || status.is_server_error()) {
        let code = if status.is_client_error() {
            code::HTTP_4XX
        } else {
            code::HTTP_5XX
        };
        return Err(Failure::new(code, format!("HTTP {status} from {shown_url}{after}")).into());
    }
    if !after.is_empty() && (status.is_client_error() || status.is_server_error()) {
        eprintln!("warning: HTTP {status} from {shown_url}{after}");
    }
    Ok(code::OK)
}

/// A client configuration with the `--timeout` (whole request and read idle),
/// `--connect-timeout` and `--retries` a command or its profile gives; the rest default.
pub(crate) fn deadlines_and_retries(
    timeout: Option<std::time::Duration>,
    connect_timeout: Option<std::time::Duration>,
    retries: Option<u32>,
) -> engine::ClientConfig {
    let mut cfg = engine::ClientConfig::default();
    if let Some(d) = timeout {
        cfg.timeouts.request = d;
        cfg.timeouts.read_idle = d;
    }
    if let Some(d) = connect_timeout {
        cfg.timeouts.connect = d;
    }
    if let Some(n) = retries {
        cfg.retry = if n == 0 {
            engine::RetryPolicy::none()
        } else {
            engine::RetryPolicy::default().total(n)
        };
    }
    cfg
}

pub(super) fn client_config(
    plan: &Plan,
    printer: Arc<HeadPrinter>,
) -> anyhow::Result<engine::ClientConfig> {
    let mut cfg = deadlines_and_retries(plan.timeout, plan.connect_timeout, plan.retries);
    if let Some(d) = plan.retry_max_wait {
        // a Retry-After is waited for whole or not at all: never cut below what the server asked
        cfg.retry.deadline = Some(d);
        cfg.retry.retry_after_max = d;
    }
    // after the last retry of a 503, the 503 is the answer: printed, with the exit code of its
    // status (as for a 404), never an error without a body
    cfg.retry.raise_on_status = false;
    if let Some(r) = plan.rate {
        cfg.rate_limit = engine::RateLimit::per_interval(r.count, r.per);
    }
    if let Some(ttl) = plan.cache {
        let dir = dirs::cache_dir()
            .map(|d| d.join("opskit").join("http"))
            .ok_or_else(|| {
                Failure::usage("--cache: cannot find a cache directory")
                    .with_hint("set XDG_CACHE_HOME")
            })?;
        cfg.cache = Some(engine::CacheConfig::new(ttl).dir(dir));
    }
    if let Some(ca) = &plan.ca_bundle {
        cfg.tls.ca_bundle = Some(ca.clone());
    }
    // --cert/--key, --insecure, --proxy or the environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY as
    // curl reads them, --no-follow/--max-redirects
    cfg.tls.client_cert = plan.client_cert.clone();
    cfg.tls.client_key = plan.client_key.clone();
    if let Some(who) = &plan.insecure {
        // on every run, not once: a flag left in a script or a profile must keep saying it
        eprintln!(
            "WARNING: {who}: TLS certificates are NOT verified; anyone on the network path can \
             read and change this traffic (give the server's CA with --ca-bundle instead)"
        );
        cfg.tls.danger_accept_invalid_certs = true;
    }
    cfg.system_proxy = true;
    cfg.proxy = plan.proxy.as_ref().map(|p| engine::ProxyConfig {
        url: p.url.clone(),
        username: p.username.clone(),
        password: p.password.as_ref().map(|s| s.to_secret()),
        no_proxy: ["NO_PROXY", "no_proxy"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty())),
    });
    if let Some(n) = plan.max_redirects {
        cfg.max_redirects = n;
    }
    cfg.auth = auth(&plan.auth);
    if let Some(s) = &plan.session {
        s.attach(&mut cfg.auth);
    }
    if let Some(n) = plan.max_body {
        cfg.max_body = n;
    }
    // redacted in the engine's events and errors, and kept from other origins on a redirect
    cfg.secret_headers = plan.secret_headers.clone();
    cfg.secret_headers.extend(
        plan.spec
            .headers
            .iter()
            .filter(|(name, _)| show::looks_like_credential(name))
            .map(|(name, _)| name.clone()),
    );
    cfg.secret_query = plan.secret_query.clone();
    // always: a long wait is announced on stderr even when nothing else is shown
    cfg.observer = Some(printer);
    if let Some(t) = &plan.timing {
        cfg.observer = Some(t.observer(cfg.observer.take()));
    }
    Ok(cfg)
}

fn auth(a: &AuthPlan) -> engine::Auth {
    match a {
        AuthPlan::None => engine::Auth::None,
        AuthPlan::Basic { username, password } => engine::Auth::Basic {
            username: username.clone(),
            password: password.to_secret(),
        },
        AuthPlan::Bearer(t) => engine::Auth::Bearer(t.to_secret()),
        AuthPlan::ApiKey {
            name,
            value,
            location,
        } => engine::Auth::ApiKey {
            name: name.clone(),
            value: value.to_secret(),
            location: match location {
                KeyLocation::Header => engine::ApiKeyLocation::Header,
                KeyLocation::Query => engine::ApiKeyLocation::Query,
            },
        },
        AuthPlan::Profile(c) => profile_auth(c),
    }
}

/// A profile's `[auth]` as the engine's auth: the one mapping (`opskit http` and `opskit ssh run
/// --inventory` use it).
pub(crate) fn profile_auth(a: &AuthConfig) -> engine::Auth {
    match a {
        AuthConfig::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            client_secret_in_body,
        } => {
            let mut o = engine::OAuth2ClientCredentials::new(
                token_url.as_str(),
                client_id.clone(),
                client_secret.to_secret(),
            );
            if !scopes.is_empty() {
                o = o.scope(scopes.join(" "));
            }
            o.audience = audience.clone();
            if *client_secret_in_body {
                o.client_auth = engine::ClientAuthMethod::Body;
            }
            engine::Auth::OAuth2(o)
        }
        AuthConfig::Oauth2RefreshToken {
            token_url,
            refresh_token,
            access_token,
            client_id,
        } => {
            let mut r = engine::RefreshTokenAuth::new(
                access_token.as_ref().map(|s| s.to_secret()),
                refresh_token.to_secret(),
                token_url.as_str(),
            );
            r.client_id = client_id.clone();
            engine::Auth::RefreshToken(r)
        }
        AuthConfig::Basic { username, password } => engine::Auth::Basic {
            username: username.clone(),
            password: password
                .as_ref()
                .map(|p| p.to_secret())
                .unwrap_or_else(|| engine::Secret::value("")),
        },
        AuthConfig::Bearer { token } => engine::Auth::Bearer(token.to_secret()),
        AuthConfig::Login(l) => super::session::engine_login(l),
        AuthConfig::ApiKey {
            name,
            value,
            location,
        } => auth(&AuthPlan::ApiKey {
            name: name.clone(),
            value: value.clone(),
            location: *location,
        }),
    }
}

pub(super) async fn builder(
    client: &engine::Client,
    method: engine::Method,
    plan: &Plan,
) -> anyhow::Result<engine::RequestBuilder> {
    let spec = &plan.spec;
    let mut rb = client.request(method, spec.url.as_str());
    for (k, v) in &spec.headers {
        rb = rb.header(k, v);
    }
    if let Some(c) = plan
        .session
        .as_ref()
        .and_then(|s| s.cookie_header(&spec.url, &spec.headers))
    {
        rb = rb.header("Cookie", &c);
    }
    rb = match &spec.body {
        Body::None => rb,
        Body::Json(v) => rb.body(v.to_string()),
        Body::Form(_) | Body::Raw(_) => match spec.body_bytes() {
            Some(b) => rb.body(b),
            None => rb,
        },
        Body::Multipart(parts) => {
            let mut form = engine::Multipart::new();
            for p in parts {
                form = form.part(match p {
                    Part::Text { name, value } => engine::Part::text(name, value),
                    Part::File { name, path, mime } => {
                        if !path.is_file() {
                            return Err(Failure::usage(format!(
                                "file item `{name}@{}`: no such file",
                                path.display()
                            ))
                            .into());
                        }
                        let part = engine::Part::file(name, path);
                        match mime {
                            Some(m) => part.content_type(m),
                            None => part,
                        }
                    }
                });
            }
            rb.multipart(form)
        }
    };
    if plan.retry_unsafe {
        rb = rb.retry_non_idempotent(true);
    }
    Ok(rb)
}

/// `-o FILE` names a file that exists and `--overwrite` was not given.
fn refuse_overwrite(path: &Path) -> Failure {
    Failure::new(
        code::FAILURE,
        format!(
            "{} exists; opskit never replaces a file unasked",
            path.display()
        ),
    )
    .with_hint("add --overwrite to replace it, or choose another name with -o")
}

/// Where the body goes: stdout, or the `-o FILE` of a request without --download. The file is
/// created when the first byte is written (a failed request leaves none), or by
/// [`BodyOut::finish`] for an empty body, and never over an existing file without --overwrite.
enum BodyOut {
    Stdout(crate::output::Stdout),
    File {
        path: PathBuf,
        overwrite: bool,
        file: Option<std::fs::File>,
    },
}

impl BodyOut {
    fn new(plan: &Plan) -> Self {
        match &plan.out_file {
            Some(path) if !plan.download => BodyOut::File {
                path: path.clone(),
                overwrite: plan.overwrite,
                file: None,
            },
            _ => BodyOut::Stdout(crate::output::stdout()),
        }
    }

    fn file(&mut self) -> std::io::Result<&mut dyn Write> {
        match self {
            BodyOut::Stdout(s) => Ok(s),
            BodyOut::File {
                path,
                overwrite,
                file,
            } => {
                if file.is_none() {
                    let mut opts = std::fs::OpenOptions::new();
                    opts.write(true);
                    if *overwrite {
                        opts.create(true).truncate(true);
                    } else {
                        opts.create_new(true);
                    }
                    let f = opts.open(&*path).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot write {}: {e}", path.display()),
                        )
                    })?;
                    *file = Some(f);
                }
                match file {
                    Some(f) => Ok(f),
                    None => Err(std::io::Error::other("the output file is not open")),
                }
            }
        }
    }

    /// Flushes, and creates the file for an empty body.
    fn finish(&mut self) -> anyhow::Result<()> {
        let path = match self {
            BodyOut::File { path, .. } => Some(path.clone()),
            BodyOut::Stdout(_) => None,
        };
        match self.file() {
            Ok(f) => Ok(f.flush()?),
            Err(e) => match path {
                Some(p) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(refuse_overwrite(&p).into())
                }
                _ => Err(e.into()),
            },
        }
    }
}

impl Write for BodyOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            BodyOut::Stdout(s) => s.flush(),
            BodyOut::File { file: Some(f), .. } => f.flush(),
            BodyOut::File { file: None, .. } => Ok(()),
        }
    }
}

/// Whether the body is written exactly as received (so it can be streamed): `--output raw`, or
/// no format and no filter for a body that is not JSON.
fn streams(plan: &Plan, content_type: &str) -> bool {
    (plan.format == Some(OutputFormat::Raw) && plan.filter.is_none())
        || (plan.format.is_none() && plan.filter.is_none() && !content_type.contains("json"))
}

/// Streams the body to stdout or `-o FILE`, chunk by chunk. On a terminal (unless `--output
/// raw` asks for the bytes) a binary body is refused, as curl does, and text is escaped by the
/// one peer-text printer so the server cannot drive the terminal.
async fn stream_body(
    plan: &Plan,
    content_type: &str,
    resp: engine::Response,
) -> anyhow::Result<()> {
    let mut out = BodyOut::new(plan);
    let guard = plan.stdout_tty
        && matches!(out, BodyOut::Stdout(_))
        && plan.format != Some(OutputFormat::Raw);
    let mut text = crate::peer_text::Stream::default();
    let mut last: Option<u8> = None;
    let mut chunks = Box::pin(resp.chunks());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| failure(e, plan.check_status))?;
        if chunk.is_empty() {
            continue;
        }
        if guard {
            if crate::peer_text::is_binary(&chunk) {
                out.flush()?;
                return Err(Failure::new(
                    code::FAILURE,
                    format!(
                        "the response body is binary ({}); not writing it to the terminal",
                        if content_type.is_empty() {
                            "no Content-Type"
                        } else {
                            content_type
                        }
                    ),
                )
                .with_hint(
                    "save it with -o FILE or --download, or pipe it; --output raw prints it anyway",
                )
                .into());
            }
            out.write_all(text.push(&chunk).as_bytes())?;
        } else {
            out.write_all(&chunk)?;
        }
        last = chunk.last().copied();
    }
    if guard {
        out.write_all(text.finish().as_bytes())?;
        if last.is_some_and(|b| b != b'\n') {
            out.write_all(b"\n")?;
        }
    }
    out.finish()
}

fn write_body(plan: &Plan, content_type: &str, body: &[u8]) -> anyhow::Result<()> {
    let mut out = BodyOut::new(plan);
    write_body_to(plan, content_type, body, &mut out)?;
    out.finish()
}

fn write_body_to(
    plan: &Plan,
    content_type: &str,
    body: &[u8],
    out: &mut BodyOut,
) -> anyhow::Result<()> {
    let wants_json = plan.filter.is_some()
        || matches!(
            plan.format,
            Some(
                OutputFormat::Json | OutputFormat::Ndjson | OutputFormat::Csv | OutputFormat::Table
            )
        );
    if (plan.format == Some(OutputFormat::Raw) && plan.filter.is_none()) || body.is_empty() {
        out.write_all(body)?;
        return Ok(());
    }
    let parsed: Option<Value> = if wants_json || content_type.contains("json") {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    let Some(value) = parsed else {
        if wants_json {
            return Err(Failure::new(
                code::FAILURE,
                "the response body is not JSON, so --output/--filter cannot apply",
            )
            .with_hint("use --output raw to see it as it is")
            .into());
        }
        out.write_all(body)?;
        if plan.stdout_tty && !body.is_empty() && !body.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        return Ok(());
    };
    let values = match &plan.filter {
        Some(f) => {
            let f = Filter::new(f).map_err(Failure::usage)?;
            f.run(&value).map_err(|e| Failure::new(code::FAILURE, e))?
        }
        None => vec![value],
    };
    let mut sink = super::render::Writer::new(plan, false, out);
    sink.push(values)?;
    sink.finish()?;
    Ok(())
}

fn paginator(p: &PagePlan) -> anyhow::Result<engine::Paginator> {
    let style = match p.style {
        PageStyle::Link => engine::PageStyle::LinkHeader,
        PageStyle::Page => engine::PageStyle::PageNumber {
            page_param: p.page_param.clone(),
            size_param: p.size_param.clone(),
            page_size: p.size,
            first_page: p.start,
            total_pages_pointer: p.total_pages.clone(),
        },
        PageStyle::Offset => engine::PageStyle::OffsetLimit {
            offset_param: p.offset_param.clone(),
            limit_param: p.size_param.clone().unwrap_or_else(|| "limit".into()),
            limit: p.size.ok_or_else(|| {
                Failure::usage("--page-style offset needs --page-size (the limit per page)")
            })?,
        },
        PageStyle::Cursor => engine::PageStyle::Cursor {
            cursor_pointer: p.cursor.clone().unwrap_or_default(),
            cursor_param: p.cursor_param.clone(),
        },
    };
    let mut pg = engine::Paginator::new(style);
    if let Some(ptr) = &p.items {
        pg = pg.items_at(ptr);
    }
    if let Some(n) = p.max_pages {
        pg = pg.max_pages(n);
    }
    if let Some(n) = p.max_items {
        pg = pg.max_items(n);
    }
    Ok(pg)
}

async fn paginate(rb: engine::RequestBuilder, plan: &Plan, pages: &PagePlan) -> anyhow::Result<u8> {
    let filter = match &plan.filter {
        Some(f) => Some(Filter::new(f).map_err(Failure::usage)?),
        None => None,
    };
    let mut out = BodyOut::new(plan);
    let mut sink = super::render::Writer::new(plan, true, &mut out);
    let mut stream = Box::pin(rb.paginate(paginator(pages)?));
    let mut outcome: anyhow::Result<()> = Ok(());
    while let Some(item) = stream.next().await {
        match item {
            Ok(v) => {
                let values = match &filter {
                    Some(f) => match f.run(&v) {
                        Ok(vs) => vs,
                        Err(e) => {
                            outcome = Err(Failure::new(code::FAILURE, e).into());
                            break;
                        }
                    },
                    None => vec![v],
                };
                if let Err(e) = sink.push(values) {
                    outcome = Err(e.into());
                    break;
                }
            }
            Err(e) => {
                outcome = Err(failure(e, plan.check_status));
                break;
            }
        }
    }
    // close the JSON array / draw the table with what arrived, even after an error
    let dropped = sink.finish()?;
    if !dropped.is_empty() {
        eprintln!(
            "warning: CSV columns first seen after the header was written were left out: {}",
            dropped.join(", ")
        );
    }
    outcome?;
    out.finish()?;
    Ok(code::OK)
}

async fn download(client: &engine::Client, plan: &Plan) -> anyhow::Result<u8> {
    let url = plan.spec.url.as_str();
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let opts = engine::DownloadOptions::default()
        .resume(plan.resume)
        .progress(move |p| {
            if let Some(t) = p.total {
                progress_bar.set_length(t);
            }
            progress_bar.set_position(p.downloaded);
        });
    let dest: PathBuf = match &plan.out_file {
        Some(p) => p.clone(),
        None => {
            if plan.resume {
                return Err(Failure::usage("--continue needs -o FILE (the file to resume)").into());
            }
            return download_named_by_server(client, plan, &bar).await;
        }
    };
    let part = engine::partial_path(&dest);
    let mut moved = false;
    if plan.resume {
        // `-o FILE --continue` resumes FILE itself (like wget -c / curl -C -): the engine
        // continues `FILE.part`, so hand it the partial file under that name.
        if dest.exists() && !part.exists() {
            std::fs::rename(&dest, &part).map_err(|e| {
                Failure::new(
                    code::FAILURE,
                    format!("cannot resume {}: {e}", dest.display()),
                )
            })?;
            moved = true;
        }
    }
    let report = match client.download(url, &dest, opts).await {
        Ok(r) => r,
        Err(e) => {
            // a failed resume (a bad 206, a dropped connection) gives the user's file back
            // under its own name, so the next --continue starts from it again
            if moved && part.exists() && !dest.exists() {
                let _ = std::fs::rename(&part, &dest);
            }
            return Err(failure(e, plan.check_status));
        }
    };
    bar.finish_and_clear();
    eprintln!(
        "saved {} ({}{})",
        report.path.display(),
        plural(report.size, "byte", "bytes"),
        if report.resumed_from > 0 {
            format!(", resumed from byte {}", report.resumed_from)
        } else {
            String::new()
        }
    );
    Ok(code::OK)
}

/// `--download` without `-o`: one GET; the file name comes from that response's
/// `Content-Disposition` (sanitised) or its final URL, and the body is streamed to `NAME.part`
/// (each chunk under the engine's read-idle deadline), renamed when complete.
async fn download_named_by_server(
    client: &engine::Client,
    plan: &Plan,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<u8> {
    use tokio::io::AsyncWriteExt;
    let fail = |e| failure(e, plan.check_status);
    let resp = client
        .get(plan.spec.url.as_str())
        .no_cache()
        .send()
        .await
        .map_err(fail)?
        .error_for_status()
        .await
        .map_err(fail)?;
    let disp = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let dest = unique(&super::filename::pick(disp.as_deref(), resp.url()));
    let part = engine::partial_path(&dest);
    let io_err = |p: &Path, e: std::io::Error| {
        Failure::new(code::FAILURE, format!("cannot write {}: {e}", p.display()))
    };
    if let Some(total) = resp.content_length() {
        bar.set_length(total);
    }
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| io_err(&part, e))?;
    let mut size: u64 = 0;
    let mut chunks = Box::pin(resp.chunks());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(fail)?;
        file.write_all(&chunk).await.map_err(|e| io_err(&part, e))?;
        size += chunk.len() as u64;
        bar.set_position(size);
    }
    file.flush().await.map_err(|e| io_err(&part, e))?;
    drop(file);
    tokio::fs::rename(&part, &dest)
        .await
        .map_err(|e| io_err(&dest, e))?;
    bar.finish_and_clear();
    eprintln!(
        "saved {} ({})",
        dest.display(),
        plural(size, "byte", "bytes")
    );
    Ok(code::OK)
}

/// `name`, or `name-1`, `name-2`… when it exists (never overwrite without -o).
fn unique(name: &Path) -> PathBuf {
    if !name.exists() {
        return name.to_path_buf();
    }
    for i in 1..10_000 {
        let candidate = PathBuf::from(format!("{}-{i}", name.display()));
        if !candidate.exists() {
            return candidate;
        }
    }
    name.to_path_buf()
}

/// When the last response of a request that may be retried is a retryable status whose
/// `Retry-After` asks for a longer wait than opskit's limit for retries: why retrying stopped.
fn retry_after_over_limit(
    plan: &Plan,
    (status, headers): &(engine::StatusCode, engine::HeaderMap),
) -> Option<String> {
    let policy = engine::RetryPolicy::default();
    let method = engine::Method::from_bytes(plan.spec.method.as_bytes()).ok()?;
    if plan.retries == Some(0)
        || !policy.statuses.contains(&status.as_u16())
        || !(policy.methods.contains(&method)
            || (plan.retry_unsafe
                && (method == engine::Method::POST || method == engine::Method::PATCH)))
    {
        return None;
    }
    let asked = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| engine::retry::parse_retry_after(v, std::time::SystemTime::now()))?;
    let limit = plan.retry_max_wait.or(policy.deadline)?;
    (asked > limit).then(|| {
        format!(
            "the server asked to wait {} s (Retry-After), more than the {} opskit waits for \
             retries; raise it with --retry-max-wait (or retry_max_wait in the profile)",
            asked.as_secs(),
            super::values::Span(limit)
        )
    })
}

/// An engine error's message, in the binary's words where the engine's are not English enough.
fn message(e: &engine::Error) -> String {
    match e {
        engine::Error::RetriesExhausted { attempts, last } => format!(
            "gave up after {}: {}",
            plural(u64::from(*attempts), "attempt", "attempts"),
            message(last)
        ),
        other => other.to_string(),
    }
}

/// Maps an engine error to the documented exit codes, with a hint.
pub fn failure(e: engine::Error, check_status: bool) -> anyhow::Error {
    let msg = message(&e);
    let f = if let engine::Error::Tls { message, .. } = e.root() {
        Failure::new(code::NETWORK, msg).with_hint(tls_hint(message))
    } else if e.is_timeout() {
        Failure::new(code::NETWORK, msg)
            .with_hint("raise --timeout / --connect-timeout, or check that the server answers")
    } else if e.is_connection() {
        Failure::new(code::NETWORK, msg)
            .with_hint("check the host and port, and that the server is running")
    } else if let Some(s) = e.status() {
        let c = match (check_status, s.is_client_error(), s.is_server_error()) {
            (true, true, _) => code::HTTP_4XX,
            (true, _, true) => code::HTTP_5XX,
            _ => code::FAILURE,
        };
        Failure::new(c, msg)
    } else {
        match e.root() {
            engine::Error::Usage { .. } | engine::Error::Config { .. } => {
                Failure::new(code::USAGE, msg)
            }
            engine::Error::Redirect { .. } => Failure::new(code::FAILURE, msg).with_hint(
                "the server redirects in a loop, too often or somewhere opskit does not follow; \
                 check the URL (-v shows every hop); --max-redirects N allows a longer chain \
                 (default 10), --no-follow prints the redirect itself",
            ),
            engine::Error::BodyTooLarge { .. } => Failure::new(code::FAILURE, msg).with_hint(
                "raise --max-body, or let it stream: --output raw, -o FILE or --download",
            ),
            _ => Failure::new(code::FAILURE, msg),
        }
    };
    f.into()
}

/// What to do about a failed TLS handshake, from what rustls said.
fn tls_hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("certificaterequired") || m.contains("certificate required") {
        "the server asks for a client certificate: give it with --cert FILE --key FILE (PEM, like \
         curl --cert/--key), or client_cert/client_key in the profile"
    } else if m.contains("not valid for") || m.contains("notvalidforname") {
        "the certificate was issued for another name: use a host name it lists (curl says the same)"
    } else if m.contains("expired") || m.contains("not valid yet") || m.contains("notvalidyet") {
        "the server's certificate is outside its validity dates (or this machine's clock is wrong)"
    } else if m.contains("protocol version") || m.contains("peerincompatible") {
        "the server and opskit share no TLS version (opskit needs TLS 1.2 or newer)"
    } else if m.contains("corrupt message")
        || m.contains("invalidcontenttype")
        || m.contains("invalid content type")
    {
        "the port does not speak TLS: try http:// instead of https://"
    } else if m.contains("certificate") || m.contains("issuer") {
        "the server's certificate is not trusted: give its CA, or the self-signed certificate \
         itself, with --ca-bundle FILE (like curl --cacert)"
    } else {
        "the TLS handshake failed: check that the URL's port serves HTTPS and, for a private CA, \
         give it with --ca-bundle FILE"
    }
}

/// Prints request and response heads for `--verbose` / `--print` as the engine reports each
/// attempt (values already redacted by the engine; redacted again here for the `--api-key`
/// Waits at least this long are always announced on stderr.
const LONG_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// name). Goes to stdout when the body is not printed, else to stderr so stdout stays data.
pub struct HeadPrinter {
    parts: Parts,
    to_stdout: bool,
    extra: Vec<String>,
    body_preview: Option<String>,
    printed_body: Mutex<bool>,
    /// A query-string API key the engine adds after reporting the URL: shown redacted.
    query_key: Option<String>,
}

impl HeadPrinter {
    pub(super) fn new(plan: &Plan) -> Self {
        HeadPrinter {
            parts: plan.parts,
            to_stdout: !plan.parts.resp_body,
            extra: show::extra_sensitive(plan),
            body_preview: plan.spec.body_preview(),
            printed_body: Mutex::new(false),
            query_key: match &plan.auth {
                AuthPlan::ApiKey {
                    name,
                    location: KeyLocation::Query,
                    ..
                } => Some(name.clone()),
                _ => None,
            },
        }
    }

    fn any(&self) -> bool {
        self.parts.req_headers || self.parts.req_body || self.parts.resp_headers
    }

    fn emit(&self, text: &str) {
        if self.to_stdout {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        } else {
            let mut o = std::io::stderr().lock();
            let _ = o.write_all(text.as_bytes());
        }
    }
}

impl engine::Observer for HeadPrinter {
    fn on_request(&self, ev: &engine::RequestEvent) {
        let mut text = String::new();
        if self.parts.req_headers {
            let target = url::Url::parse(&ev.url)
                .map(|u| {
                    let (mut u, _) = show::redact_query(&u, &self.extra);
                    if let Some(k) = &self.query_key
                        && !u.query_pairs().any(|(n, _)| n == k.as_str())
                    {
                        u.query_pairs_mut().append_pair(k, show::REDACTED);
                    }
                    let mut t = u.path().to_owned();
                    if let Some(q) = u.query() {
                        t.push('?');
                        t.push_str(q);
                    }
                    (
                        t,
                        u.host_str().map(|h| match u.port() {
                            Some(p) => format!("{h}:{p}"),
                            None => h.to_owned(),
                        }),
                    )
                })
                .unwrap_or_else(|_| (ev.url.clone(), None));
            text.push_str(&format!("{} {} HTTP/1.1\n", ev.method, target.0));
            if let Some(h) = target.1 {
                text.push_str(&format!("Host: {h}\n"));
            }
            for (k, v) in &ev.headers {
                text.push_str(&format!("{k}: {}\n", show::redact_value(k, v, &self.extra)));
            }
            text.push('\n');
        }
        if self.parts.req_body
            && let Ok(mut done) = self.printed_body.lock()
            && !*done
        {
            *done = true;
            if let Some(b) = &self.body_preview {
                text.push_str(b);
                text.push_str("\n\n");
            }
        }
        if !text.is_empty() {
            self.emit(&text);
        }
    }

    fn on_response(&self, ev: &engine::ResponseEvent) {
        if !self.parts.resp_headers {
            return;
        }
        let mut text = format!(
            "{} {} {}{}\n",
            ev.version,
            ev.status.as_u16(),
            ev.status.canonical_reason().unwrap_or(""),
            if ev.from_cache { " (from cache)" } else { "" }
        );
        for (k, v) in &ev.headers {
            let v = show::redact_value(k, v, &self.extra);
            text.push_str(&format!("{k}: {}\n", crate::peer_text::line(&v)));
        }
        text.push('\n');
        self.emit(&text);
    }

    fn on_wait(&self, ev: &engine::WaitEvent) {
        // a pause of a second or more is said on stderr even with stdout piped: a command that
        // sits silent for a rate limit looks hung
        if !self.any() && ev.wait < LONG_WAIT {
            return;
        }
        let why = match &ev.reason {
            engine::WaitReason::Retry { retry, cause, .. } => {
                format!("retry {retry} after {cause}")
            }
            engine::WaitReason::RateLimit => "client rate limit".into(),
            engine::WaitReason::ServerQuota => "server quota used up".into(),
        };
        let _ = writeln!(
            std::io::stderr(),
            "… waiting {:.1}s for {} ({why})",
            ev.wait.as_secs_f64(),
            ev.host
        );
    }
}
