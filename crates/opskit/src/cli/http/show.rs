//! Printing a request without sending it (`--offline`), as a curl command (`--curl`), and the
//! request/response head for `--verbose` / `--print`. Secrets are always redacted.

use std::fmt::Write as _;

use super::plan::{AuthPlan, Plan};
use super::profile::{AuthConfig, KeyLocation};
use super::request::{Body, Part, RequestSpec, shell_quote};
use super::values::SecretRef;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Whether a header's value is a secret: the engine's list, any name that looks like a
/// credential, and `extra` (the `--api-key` name, a profile's `secret_headers`).
pub fn is_sensitive(name: &str, extra: &[String]) -> bool {
    looks_like_credential(name) || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
}

/// Header names that carry credentials by their look: `Authorization`, `Cookie`, `X-Api-Key`,
/// `X-Auth-…`, `…-Token`, `…Secret…`, `…Password…`, `…Session…`, `…Signature…`, `…Key`.
pub fn looks_like_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n == "idempotency-key" || n == "x-idempotency-key" {
        return false;
    }
    opskit_http::is_sensitive_header(&n)
        || [
            "auth",
            "key",
            "credential",
            "session",
            "cookie",
            "signature",
            "passwd",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// Whether a query parameter's value is a secret: `api_key`, `key`, `token`, `access_token`,
/// `client_secret`, `password`, `sig`, … (and `extra`, by exact name).
pub fn is_sensitive_param(name: &str, extra: &[String]) -> bool {
    if extra.iter().any(|e| e.eq_ignore_ascii_case(name)) {
        return true;
    }
    let n = name.to_ascii_lowercase().replace('-', "_");
    let last = n.rsplit('_').next().unwrap_or(&n);
    [
        "token",
        "secret",
        "password",
        "apikey",
        "api_key",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
        || ["key", "sig", "signature", "auth", "passwd", "pass", "pwd"].contains(&last)
}

/// `url` with the values of secret query parameters replaced by [`REDACTED`]; `true` when one
/// was.
pub fn redact_query(url: &url::Url, extra: &[String]) -> (url::Url, bool) {
    if url.query().is_none() {
        return (url.clone(), false);
    }
    let mut any = false;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            if is_sensitive_param(&k, extra) && v != REDACTED {
                any = true;
                (k.into_owned(), REDACTED.to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    if !any {
        return (url.clone(), false);
    }
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    (out, true)
}

/// Header or parameter names that hold a secret for this plan: the `--api-key` name and the
/// profile's `secret_headers` and `secret_query`.
pub fn extra_sensitive(plan: &Plan) -> Vec<String> {
    let mut names = plan.secret_names.clone();
    if let AuthPlan::ApiKey { name, .. } = &plan.auth {
        names.push(name.clone());
    }
    names
}

/// The request as it will go on the wire (auth included, secrets redacted).
pub fn offline_text(plan: &Plan, with_headers: bool, with_body: bool) -> String {
    let extra = extra_sensitive(plan);
    let mut spec = plan.spec.clone();
    match &plan.auth {
        AuthPlan::None => {}
        AuthPlan::Basic { .. } => spec.set_header("Authorization", &format!("Basic {REDACTED}")),
        AuthPlan::Bearer(_) => spec.set_header("Authorization", &format!("Bearer {REDACTED}")),
        AuthPlan::ApiKey {
            name,
            location: KeyLocation::Header,
            ..
        } => spec.set_header(name, REDACTED),
        AuthPlan::ApiKey {
            name,
            location: KeyLocation::Query,
            ..
        } => {
            spec.url.query_pairs_mut().append_pair(name, REDACTED);
        }
        AuthPlan::Profile(_) => spec.set_header(
            "Authorization",
            &format!("Bearer {REDACTED} (OAuth2 token fetched when sent)"),
        ),
    }
    let mut out = String::new();
    if with_headers {
        out.push_str(&head_text(&spec, &extra));
    }
    if with_body && let Some(body) = spec.body_preview() {
        if with_headers {
            out.push('\n');
        }
        out.push_str(&body);
        out.push('\n');
    }
    out
}

/// `METHOD /path?query HTTP/1.1`, `Host:` and the headers, secrets redacted.
pub fn head_text(spec: &RequestSpec, extra: &[String]) -> String {
    let (parsed, _) = redact_query(&spec.url, extra);
    let mut target = parsed.path().to_owned();
    if let Some(q) = parsed.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut out = format!("{} {} HTTP/1.1\n", spec.method, target);
    if let Some(host) = spec.url.host_str() {
        let host = match spec.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let _ = writeln!(out, "Host: {host}");
    }
    for (k, v) in &spec.headers {
        let v = redact_value(k, v, extra);
        let _ = writeln!(out, "{k}: {v}");
    }
    out
}

/// A header value as it may be shown: secrets become `<redacted>`, keeping an auth scheme.
pub fn redact_value(name: &str, value: &str, extra: &[String]) -> String {
    if !is_sensitive(name, extra) {
        return value.to_owned();
    }
    if (name.eq_ignore_ascii_case("authorization")
        || name.eq_ignore_ascii_case("proxy-authorization"))
        && let Some((scheme, _)) = value.split_once(' ')
    {
        return format!("{scheme} {REDACTED}");
    }
    REDACTED.to_owned()
}

/// The equivalent curl command. Secrets given as `env:`/`file:`/`cmd:` become shell
/// expressions (`"${VAR}"`, `"$(cat FILE)"`), so the command works without ever showing them;
/// inline secrets are redacted. Returns the command and whether something was redacted.
pub fn curl_command(plan: &Plan) -> (String, bool) {
    let redacted = std::cell::Cell::new(false);
    let secret = |s: &SecretRef| -> String {
        match s.shell_expr() {
            Some(e) => e,
            None => {
                redacted.set(true);
                REDACTED.to_owned()
            }
        }
    };
    let spec = &plan.spec;
    let extra = extra_sensitive(plan);
    let mut words: Vec<String> = vec!["curl".into()];
    // secret query values (a profile's api_key, …) are never written out
    let (mut url, query_redacted) = redact_query(&spec.url, &extra);
    if query_redacted {
        redacted.set(true);
    }
    let mut auth_args: Vec<String> = Vec::new();
    match &plan.auth {
        AuthPlan::None => {}
        AuthPlan::Basic { username, password } => {
            auth_args.push("-u".into());
            auth_args.push(dquote(&format!("{username}:{}", secret(password))));
        }
        AuthPlan::Bearer(t) => {
            auth_args.push("-H".into());
            auth_args.push(dquote(&format!("Authorization: Bearer {}", secret(t))));
        }
        AuthPlan::ApiKey {
            name,
            value,
            location: KeyLocation::Header,
        } => {
            auth_args.push("-H".into());
            auth_args.push(dquote(&format!("{name}: {}", secret(value))));
        }
        AuthPlan::ApiKey {
            name,
            value,
            location: KeyLocation::Query,
        } => {
            let v = secret(value);
            url.query_pairs_mut().append_pair(name, "__OPSKIT_KEY__");
            let u = url.as_str().replace("__OPSKIT_KEY__", &v);
            url = url::Url::parse(&u).unwrap_or(url);
        }
        AuthPlan::Profile(cfg) => {
            let how = match cfg {
                AuthConfig::Oauth2ClientCredentials { .. } => "client credentials",
                AuthConfig::Login(_) => "login",
                _ => "refresh token",
            };
            redacted.set(true);
            auth_args.push("-H".into());
            auth_args.push(dquote(&format!(
                "Authorization: Bearer <OAuth2 {how} token: fetch it first>"
            )));
        }
    }
    if spec.method != "GET" || !matches!(spec.body, Body::None) {
        words.push("-X".into());
        words.push(spec.method.clone());
    }
    if let Some(t) = plan.timeout {
        words.push("--max-time".into());
        words.push(format!("{}", t.as_secs_f64()));
    }
    if let Some(t) = plan.connect_timeout {
        words.push("--connect-timeout".into());
        words.push(format!("{}", t.as_secs_f64()));
    }
    if let Some(n) = plan.retries {
        words.push("--retry".into());
        words.push(n.to_string());
    }
    if let Some(t) = plan.retry_max_wait {
        words.push("--retry-max-time".into());
        words.push(format!("{}", t.as_secs_f64()));
    }
    if plan.check_status {
        words.push("--fail".into());
    }
    // redirects, TLS and proxy as curl spells them (opskit follows redirects unless told not to;
    // curl only with -L)
    if plan.max_redirects != Some(0) {
        words.push("-L".into());
    }
    if let Some(n) = plan.max_redirects.filter(|n| *n > 0) {
        words.push("--max-redirs".into());
        words.push(n.to_string());
    }
    for (flag, path) in [
        ("--cacert", &plan.ca_bundle),
        ("--cert", &plan.client_cert),
        ("--key", &plan.client_key),
    ] {
        if let Some(p) = path {
            words.push(flag.into());
            words.push(shell_quote(&p.display().to_string()));
        }
    }
    if plan.insecure.is_some() {
        words.push("-k".into());
    }
    if let Some(p) = &plan.proxy {
        words.push("-x".into());
        words.push(shell_quote(&p.url));
        if let Some(user) = &p.username {
            words.push("--proxy-user".into());
            words.push(match &p.password {
                Some(pw) => shell_quote(&format!("{user}:{}", secret(pw))),
                None => shell_quote(user),
            });
        }
    }
    // the URL may hold a shell expression for a query API key
    let url_word = if url.as_str().contains("${") || url.as_str().contains("$(") {
        dquote(url.as_str())
    } else {
        shell_quote(url.as_str())
    };
    words.push(url_word);
    for (k, v) in &spec.headers {
        words.push("-H".into());
        let v = if is_sensitive(k, &extra) && !v.is_empty() {
            // a header item or profile header: its value is not written out
            redacted.set(true);
            redact_value(k, v, &extra)
        } else {
            v.clone()
        };
        words.push(if v.is_empty() {
            shell_quote(&format!("{k};"))
        } else {
            shell_quote(&format!("{k}: {v}"))
        });
    }
    words.extend(auth_args);
    match &spec.body {
        Body::None => {}
        Body::Json(v) => {
            words.push("--data-binary".into());
            words.push(shell_quote(&v.to_string()));
        }
        Body::Form(pairs) => {
            for (k, v) in pairs {
                words.push("--data-urlencode".into());
                words.push(shell_quote(&format!("{k}={v}")));
            }
        }
        Body::Multipart(parts) => {
            for p in parts {
                words.push("-F".into());
                words.push(match p {
                    Part::Text { name, value } => shell_quote(&format!("{name}={value}")),
                    Part::File { name, path, mime } => shell_quote(&format!(
                        "{name}=@{}{}",
                        path.display(),
                        mime.as_deref()
                            .map(|m| format!(";type={m}"))
                            .unwrap_or_default()
                    )),
                });
            }
        }
        Body::Raw(bytes) => {
            words.push("--data-binary".into());
            words.push(shell_quote(&String::from_utf8_lossy(bytes)));
        }
    }
    (words.join(" "), redacted.get())
}

fn dquote(s: &str) -> String {
    // double quotes so ${VAR} and $(…) expand; escape what double quotes would interpret
    // except the expansions we put there on purpose
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' || c == '`' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
