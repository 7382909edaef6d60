//! Printing a request without sending it (`--offline`), as a curl command (`--curl`), and the
//! request/response head for `--verbose` / `--print`. Secrets are always redacted.

use std::fmt::Write as _;

use super::plan::{AuthPlan, Plan};
use super::profile::{AuthConfig, KeyLocation};
use super::request::{Body, Part, RequestSpec, shell_quote};
use super::values::SecretRef;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Whether a header's value is a secret (the engine's list plus the `--api-key` name).
pub fn is_sensitive(name: &str, extra: &[String]) -> bool {
    opskit_http::is_sensitive_header(name) || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
}

/// Header or parameter names that hold a secret for this plan.
pub fn extra_sensitive(plan: &Plan) -> Vec<String> {
    match &plan.auth {
        AuthPlan::ApiKey { name, .. } => vec![name.clone()],
        _ => Vec::new(),
    }
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
    let url = opskit_http::redact_url(&spec.url, extra);
    let parsed = url::Url::parse(&url).unwrap_or_else(|_| spec.url.clone());
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
    let mut redacted = false;
    let mut secret = |s: &SecretRef| -> String {
        match s.shell_expr() {
            Some(e) => e,
            None => {
                redacted = true;
                REDACTED.to_owned()
            }
        }
    };
    let spec = &plan.spec;
    let mut words: Vec<String> = vec!["curl".into()];
    let mut url = spec.url.clone();
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
                _ => "refresh token",
            };
            redacted = true;
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
    if plan.check_status {
        words.push("--fail".into());
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
    (words.join(" "), redacted)
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
