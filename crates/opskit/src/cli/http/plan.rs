//! Merges the flags, the profile and the request items into one plan: what to send and how.
//! Flags win over the profile; the profile wins over the defaults.

use std::io::IsTerminal;
use std::time::Duration;

use super::args::HttpOptions;
use super::items::{self, ITEM_SYNTAX, Item};
use super::profile::{self, AuthConfig, KeyLocation, PaginateConfig, Profile};
use super::render::OutputFormat;
use super::request::{self, Body, BodyMode, RequestSpec};
use super::values::{PageStyle, Rate, SecretRef};
use crate::exit::Failure;

/// How to authenticate, after flags and profile are merged.
#[derive(Debug, Clone)]
pub enum AuthPlan {
    None,
    Basic {
        username: String,
        password: SecretRef,
    },
    Bearer(SecretRef),
    ApiKey {
        name: String,
        value: SecretRef,
        location: KeyLocation,
    },
    /// OAuth2 from a profile (client credentials or refresh token).
    Profile(AuthConfig),
}

/// Pagination after flags and profile are merged.
#[derive(Debug, Clone)]
pub struct PagePlan {
    pub style: PageStyle,
    pub items: Option<String>,
    pub page_param: String,
    pub start: u64,
    pub offset_param: String,
    pub size_param: Option<String>,
    pub size: Option<u64>,
    pub cursor_param: String,
    pub cursor: Option<String>,
    pub total_pages: Option<String>,
    pub max_pages: Option<u64>,
    pub max_items: Option<u64>,
}

/// Which parts to print (HTTPie's `--print` letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub req_headers: bool,
    pub req_body: bool,
    pub resp_headers: bool,
    pub resp_body: bool,
}

impl Parts {
    pub fn parse(s: &str) -> Result<Self, Failure> {
        let mut p = Parts {
            req_headers: false,
            req_body: false,
            resp_headers: false,
            resp_body: false,
        };
        for c in s.chars() {
            match c {
                'H' => p.req_headers = true,
                'B' => p.req_body = true,
                'h' => p.resp_headers = true,
                'b' => p.resp_body = true,
                other => {
                    return Err(Failure::usage(format!(
                        "--print `{s}`: unknown part `{other}`"
                    ))
                    .with_hint("use the letters H (request headers), B (request body), h (response headers), b (response body)"));
                }
            }
        }
        Ok(p)
    }
}

/// Everything needed to send the request and show the result.
#[derive(Debug)]
pub struct Plan {
    pub spec: RequestSpec,
    pub profile_name: Option<String>,
    /// Header and query names the profile marks secret (`secret_headers`, `secret_query`).
    pub secret_names: Vec<String>,
    /// The profile's `secret_headers` alone (the engine drops them on a cross-origin redirect).
    pub secret_headers: Vec<String>,
    /// The profile's `secret_query` alone.
    pub secret_query: Vec<String>,
    pub auth: AuthPlan,
    /// `--session NAME`: cookies and login tokens kept between runs.
    pub session: Option<std::sync::Arc<super::session::Session>>,
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    /// `--max-time`: deadline of the whole command.
    pub max_time: Option<Duration>,
    /// `--max-body`: cap of a buffered body.
    pub max_body: Option<u64>,
    pub retries: Option<u32>,
    /// `--retry-max-wait`: the longest time spent waiting for retries, in all.
    pub retry_max_wait: Option<Duration>,
    pub retry_unsafe: bool,
    pub rate: Option<Rate>,
    pub cache: Option<Duration>,
    pub ca_bundle: Option<std::path::PathBuf>,
    pub check_status: bool,
    pub paginate: Option<PagePlan>,
    pub format: Option<OutputFormat>,
    /// `--timing`: the phases of the request, printed on stderr at the end.
    pub timing: Option<std::sync::Arc<super::timing::Timing>>,
    pub filter: Option<String>,
    pub parts: Parts,
    pub color: bool,
    pub stdout_tty: bool,
    pub download: bool,
    pub out_file: Option<std::path::PathBuf>,
    /// `--overwrite`: `-o FILE` may replace an existing file.
    pub overwrite: bool,
    pub resume: bool,
    pub offline: bool,
    pub curl: bool,
    /// `--print`/`-v` was given (so `--offline` prints only those parts).
    pub print_explicit: bool,
    /// `-r/--raw-output`: strings unquoted, as `jq -r`.
    pub raw_output: bool,
    /// `--cert`/`--key` or the profile's `client_cert`/`client_key`.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    /// Certificates are not verified: who asked for it (`--insecure`, or the profile), for the
    /// warning printed on every run.
    pub insecure: Option<String>,
    /// `--proxy`, its credentials taken out of the URL.
    pub proxy: Option<ProxyPlan>,
    /// `--no-follow` (0) or `--max-redirects N`; the engine's default (10) otherwise.
    pub max_redirects: Option<usize>,
}

/// `--proxy URL` with the `user:pass@` of the URL held apart (the password as a secret), so no
/// message or event can show it.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// The URL without credentials.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
}

impl ProxyPlan {
    /// Parses `--proxy`: `http://` or `https://` (a bare `host:port` is `http://`, as curl
    /// takes it); the error never repeats the password.
    pub fn parse(raw: &str) -> Result<ProxyPlan, Failure> {
        // never repeated when it holds credentials
        let shown = if raw.contains('@') {
            "<URL with credentials>"
        } else {
            raw
        };
        let full = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let mut u = url::Url::parse(&full).map_err(|e| {
            Failure::usage(format!("--proxy `{shown}` is not a valid URL ({e})"))
                .with_hint("e.g. --proxy http://proxy.corp:3128 or http://user:pass@proxy:3128")
        })?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
            return Err(Failure::usage(format!(
                "--proxy `{shown}`: only http:// and https:// proxies with a host are supported"
            )));
        }
        let decode = |s: &str| {
            // the URL keeps user and password percent-encoded; the proxy wants them plain
            let b = s.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (b[i], hex) {
                    (b'%', Some(v)) => {
                        out.push(v);
                        i += 3;
                    }
                    (c, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        let username = (!u.username().is_empty()).then(|| decode(u.username()));
        let password = u
            .password()
            .map(|p| SecretRef::Inline(secrecy::SecretString::from(decode(p))));
        let _ = u.set_username("");
        let _ = u.set_password(None);
        Ok(ProxyPlan {
            url: u.to_string(),
            username,
            password,
        })
    }
}

impl Plan {
    pub fn offline_or_curl(&self) -> bool {
        self.offline || self.curl
    }
}

/// Builds the plan. Every error here is a usage error (exit code 2).
pub fn build(
    method: &str,
    url: &str,
    raw_items: &[String],
    o: HttpOptions,
) -> anyhow::Result<Plan> {
    let method = method.to_ascii_uppercase();
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
        return Err(Failure::usage(format!("bad HTTP method `{method}`"))
            .with_hint("use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
            .into());
    }
    let parsed: Vec<Item> = items::parse_all(raw_items)
        .map_err(|e| Failure::usage(e.to_string()).with_hint(ITEM_SYNTAX))?;

    let selected = profile::select(o.profile.as_deref()).map_err(|e| {
        let f = Failure::usage(e.message);
        match e.hint {
            Some(h) => f.with_hint(h),
            None => f,
        }
    })?;
    let (profile_name, prof) = match selected {
        // The file's default_profile only applies to its own API: an absolute URL to another
        // origin must not receive that profile's credentials and headers.
        Some((_, p)) if o.profile.is_none() && !same_origin(url, p.base_url.as_ref()) => {
            (None, Profile::default())
        }
        Some((n, p)) => (Some(n), p),
        None => (None, Profile::default()),
    };

    let url = request::resolve_url(url, prof.base_url.as_ref()).map_err(|e| {
        Failure::usage(e.0).with_hint("give an absolute URL, or --profile NAME with a base_url")
    })?;
    let mut spec = RequestSpec {
        method: method.clone(),
        url,
        headers: vec![("Accept".into(), "application/json, */*;q=0.5".into())],
        body: Body::None,
    };
    for (k, v) in &prof.headers {
        spec.set_header(k, v);
    }
    if !prof.query.is_empty() {
        let existing: Vec<(String, String)> = spec.url.query_pairs().into_owned().collect();
        let mut pairs = spec.url.query_pairs_mut();
        pairs.clear();
        for (k, v) in &prof.query {
            if !existing.iter().any(|(ek, _)| ek == k) {
                pairs.append_pair(k, v);
            }
        }
        pairs.extend_pairs(existing);
    }

    let has_body_item = parsed.iter().any(|i| {
        matches!(
            i,
            Item::Data { .. } | Item::Json { .. } | Item::File { .. } | Item::RawBody { .. }
        )
    });
    let stdin_body = if !has_body_item
        && !o.ignore_stdin
        && matches!(method.as_str(), "POST" | "PUT" | "PATCH")
        && stdin_is_data()
    {
        let bytes =
            request::read_body_file(std::path::Path::new("-")).map_err(|e| Failure::usage(e.0))?;
        (!bytes.is_empty()).then_some(bytes)
    } else {
        None
    };
    let mode = if o.multipart {
        BodyMode::Multipart
    } else if o.form {
        BodyMode::Form
    } else {
        BodyMode::Json
    };
    request::apply_items(&mut spec, parsed, mode, stdin_body).map_err(|e| Failure::usage(e.0))?;
    if let Some(ct) = spec.implied_content_type() {
        spec.default_header("Content-Type", ct);
    }

    let auth = auth_plan(&o, prof.auth.clone())?;
    if !(o.offline || o.curl) {
        // --offline and --curl never read the secrets
        check_secret_sources(&auth)?;
    }
    let session = match o.offline || o.curl {
        true => None,
        false => super::session::open(
            o.session.as_deref(),
            o.session_reset,
            profile_name.as_deref(),
            &spec.url,
            o.verbose || o.print.as_deref().is_some_and(|p| p.contains('H')),
        )?,
    };

    let paginate = if o.paginate {
        Some(page_plan(&o, prof.paginate.clone().unwrap_or_default())?)
    } else {
        None
    };
    if o.download && paginate.is_some() {
        return Err(Failure::usage("--download and --paginate cannot be combined").into());
    }
    if o.resume && o.out_file.is_none() {
        // allowed: the name then comes from the URL; nothing to check here
    }

    // `-o FILE` without --download: the body goes to the file, plain (no colour, no heads)
    let stdout_tty = std::io::stdout().is_terminal() && (o.out_file.is_none() || o.download);
    let color = stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let parts = match (&o.print, o.verbose) {
        (Some(p), _) => Parts::parse(p)?,
        (None, true) => Parts::parse("HBhb")?,
        (None, false) if stdout_tty && !o.download => Parts::parse("hb")?,
        (None, false) => Parts::parse("b")?,
    };
    let filter = o.filter.clone();
    if let Some(f) = &filter {
        // compile now so a bad program is a usage error before anything is sent
        super::filter::Filter::new(f).map_err(|e| {
            Failure::usage(e)
                .with_hint("the filter language is jq's (jaq): e.g. '.items[] | {name, ip}'")
        })?;
    }

    if o.raw_output && matches!(o.format, Some(OutputFormat::Csv | OutputFormat::Table)) {
        return Err(Failure::usage(format!(
            "-r/--raw-output prints JSON strings unquoted; it does not apply to --output {}",
            if o.format == Some(OutputFormat::Csv) {
                "csv"
            } else {
                "table"
            }
        ))
        .with_hint("use -r with --output json, ndjson or raw")
        .into());
    }
    let proxy = o.proxy.as_deref().map(ProxyPlan::parse).transpose()?;
    let insecure = if o.insecure {
        Some("--insecure".to_owned())
    } else if prof.insecure == Some(true) {
        Some(format!(
            "profile `{}` (insecure = true)",
            profile_name.as_deref().unwrap_or("?")
        ))
    } else {
        None
    };

    Ok(Plan {
        spec,
        profile_name,
        secret_names: prof
            .secret_headers
            .iter()
            .chain(&prof.secret_query)
            .cloned()
            .collect(),
        secret_headers: prof.secret_headers.clone(),
        secret_query: prof.secret_query.clone(),
        auth,
        session,
        timeout: o.timeout.or(prof.timeout).map(|s| s.0),
        connect_timeout: o.connect_timeout.or(prof.connect_timeout).map(|s| s.0),
        max_time: o.max_time.map(|s| s.0),
        max_body: o.max_body.map(|b| b.0),
        retries: o.retries.or(prof.retries),
        retry_max_wait: o.retry_max_wait.or(prof.retry_max_wait).map(|s| s.0),
        retry_unsafe: o.retry_unsafe || prof.retry_unsafe.unwrap_or(false),
        rate: o.rate.or(prof.rate),
        cache: o.cache.or(prof.cache).map(|s| s.0),
        ca_bundle: o.ca_bundle.clone().or(prof.ca_bundle.clone()),
        check_status: o.check_status || prof.check_status.unwrap_or(false),
        paginate,
        format: o.format,
        timing: o.timing.map(super::timing::Timing::new),
        filter,
        parts,
        color,
        stdout_tty,
        download: o.download,
        out_file: o.out_file,
        overwrite: o.overwrite,
        resume: o.resume,
        offline: o.offline,
        curl: o.curl,
        print_explicit: o.print.is_some() || o.verbose,
        raw_output: o.raw_output,
        client_cert: o.cert.or(prof.client_cert),
        client_key: o.key.or(prof.client_key),
        insecure,
        proxy,
        max_redirects: if o.no_follow {
            Some(0)
        } else {
            o.max_redirects
        },
    })
}

fn auth_plan(o: &HttpOptions, profile_auth: Option<AuthConfig>) -> anyhow::Result<AuthPlan> {
    if let Some(a) = &o.auth {
        let (user, pass) = match a.split_once(':') {
            Some((u, p)) => (u.to_owned(), SecretRef::new(p)),
            None => (a.clone(), prompt_password(a)?),
        };
        if user.is_empty() {
            return Err(Failure::usage("--auth needs a user name: --auth USER[:PASS]").into());
        }
        return Ok(AuthPlan::Basic {
            username: user,
            password: pass,
        });
    }
    if let Some(t) = &o.bearer {
        return Ok(AuthPlan::Bearer(t.clone()));
    }
    if let Some(k) = &o.api_key {
        let Some((name, value)) = k.split_once('=') else {
            return Err(Failure::usage(format!("--api-key `{k}` is not NAME=VALUE"))
                .with_hint("e.g. --api-key X-API-Key=env:API_KEY --api-key-in header")
                .into());
        };
        if name.is_empty() {
            return Err(Failure::usage("--api-key needs a name before `=`").into());
        }
        let value: SecretRef = value.parse().map_err(Failure::usage)?;
        return Ok(AuthPlan::ApiKey {
            name: name.to_owned(),
            value,
            location: o.api_key_in,
        });
    }
    Ok(match profile_auth {
        None => AuthPlan::None,
        Some(AuthConfig::Basic { username, password }) => AuthPlan::Basic {
            username,
            password: password.unwrap_or_else(|| SecretRef::new("value:")),
        },
        Some(AuthConfig::Bearer { token }) => AuthPlan::Bearer(token),
        Some(AuthConfig::ApiKey {
            name,
            value,
            location,
        }) => AuthPlan::ApiKey {
            name,
            value,
            location,
        },
        Some(other) => AuthPlan::Profile(other),
    })
}

/// A secret reference that cannot work (unset variable, missing file) is a usage error, found
/// before anything is sent. Commands (`cmd:`) are run only when the secret is needed.
fn check_secret_sources(auth: &AuthPlan) -> anyhow::Result<()> {
    let refs: Vec<&SecretRef> = match auth {
        AuthPlan::None => vec![],
        AuthPlan::Basic { password, .. } => vec![password],
        AuthPlan::Bearer(t) => vec![t],
        AuthPlan::ApiKey { value, .. } => vec![value],
        AuthPlan::Profile(AuthConfig::Oauth2ClientCredentials { client_secret, .. }) => {
            vec![client_secret]
        }
        AuthPlan::Profile(AuthConfig::Oauth2RefreshToken {
            refresh_token,
            access_token,
            ..
        }) => std::iter::once(refresh_token)
            .chain(access_token.as_ref())
            .collect(),
        AuthPlan::Profile(AuthConfig::Login(l)) => vec![&l.username, &l.password],
        AuthPlan::Profile(_) => vec![],
    };
    for r in refs {
        let Some(spec) = r.reference() else {
            continue;
        };
        if let Some(var) = spec.strip_prefix("env:")
            && std::env::var_os(var).is_none_or(|v| v.is_empty())
        {
            return Err(Failure::usage(format!(
                "the secret `{}` refers to an environment variable that is not set",
                spec
            ))
            .with_hint(format!(
                "export {var}=…, or give the secret as file:PATH or cmd:COMMAND"
            ))
            .into());
        }
        if let Some(path) = spec.strip_prefix("file:")
            && !std::path::Path::new(path).is_file()
        {
            return Err(Failure::usage(format!(
                "the secret `{}` refers to a file that does not exist",
                spec
            ))
            .into());
        }
    }
    Ok(())
}

/// `--auth USER` without a password: ask on the terminal, like curl and HTTPie.
fn prompt_password(user: &str) -> anyhow::Result<SecretRef> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "--auth {user} has no password and there is no terminal to ask for one"
        ))
        .with_hint("use --auth USER:env:VAR, USER:file:PATH or USER:PASS")
        .into());
    }
    let pass = rpassword::prompt_password(format!("opskit: password for {user}: "))
        .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?;
    Ok(SecretRef::Inline(secrecy::SecretString::from(pass)))
}

fn page_plan(o: &HttpOptions, p: PaginateConfig) -> anyhow::Result<PagePlan> {
    let style = o.page_style.or(p.style).unwrap_or(PageStyle::Link);
    let cursor = o.cursor_pointer.clone().or(p.cursor);
    if style == PageStyle::Cursor && cursor.is_none() {
        return Err(Failure::usage("--page-style cursor needs --cursor-pointer")
            .with_hint("the JSON pointer to the next cursor, e.g. --cursor-pointer /meta/next")
            .into());
    }
    let items = o.page_items.clone().or(p.items);
    let total_pages = o.total_pages.clone().or(p.total_pages);
    for ptr in [&items, &cursor, &total_pages].into_iter().flatten() {
        if !ptr.is_empty() && !ptr.starts_with('/') {
            return Err(Failure::usage(format!(
                "`{ptr}` is not a JSON pointer; it must start with `/` (e.g. /data)"
            ))
            .into());
        }
    }
    Ok(PagePlan {
        style,
        items,
        page_param: o
            .page_param
            .clone()
            .or(p.page_param)
            .unwrap_or_else(|| "page".into()),
        start: o.page_start.or(p.start).unwrap_or(1),
        offset_param: o
            .offset_param
            .clone()
            .or(p.offset_param)
            .unwrap_or_else(|| "offset".into()),
        size_param: o.page_size_param.clone().or(p.size_param),
        size: o.page_size.or(p.size),
        cursor_param: o
            .cursor_param
            .clone()
            .or(p.cursor_param)
            .unwrap_or_else(|| "cursor".into()),
        cursor,
        total_pages,
        max_pages: o.max_pages,
        max_items: o.max_items,
    })
}

/// Whether `raw` is relative, or absolute with the same scheme, host and port as `base`.
fn same_origin(raw: &str, base: Option<&url::Url>) -> bool {
    if !(raw.starts_with("http://") || raw.starts_with("https://")) {
        return true;
    }
    match (url::Url::parse(raw), base) {
        (Ok(u), Some(b)) => u.origin() == b.origin(),
        _ => false,
    }
}

/// Whether stdin holds data meant as a body: a pipe or a regular file, never a terminal or
/// `/dev/null` (cron, CI and most test harnesses).
fn stdin_is_data() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else {
        return false;
    };
    let file = std::fs::File::from(fd);
    match file.metadata() {
        Ok(m) => {
            let t = m.file_type();
            t.is_fifo() || (t.is_file() && m.len() > 0)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_letters() {
        let p = Parts::parse("Hb").unwrap();
        assert!(p.req_headers && p.resp_body && !p.req_body && !p.resp_headers);
        let e = Parts::parse("Hx").unwrap_err();
        assert!(e.message.contains("`x`"), "{}", e.message);
    }

    #[test]
    fn origins() {
        let base = url::Url::parse("https://cmdb.example/api/v1").unwrap();
        assert!(same_origin("/hosts", Some(&base)));
        assert!(same_origin("https://cmdb.example/other", Some(&base)));
        assert!(!same_origin("https://evil.example/api/v1", Some(&base)));
        assert!(!same_origin("http://cmdb.example/api/v1", Some(&base)));
        assert!(!same_origin("https://cmdb.example/x", None));
    }
}
