//! The proxy of the transport: an explicit one (with basic auth, its password read like every
//! other secret), the environment's `HTTP(S)_PROXY`/`NO_PROXY`, or none.

use secrecy::ExposeSecret;

use crate::config::ClientConfig;
use crate::error::Error;

/// Applies the proxy settings of `cfg` to the reqwest builder.
pub(crate) fn configure(
    mut b: reqwest::ClientBuilder,
    cfg: &ClientConfig,
) -> Result<reqwest::ClientBuilder, Error> {
    if let Some(p) = &cfg.proxy {
        let mut proxy = reqwest::Proxy::all(&p.url).map_err(|e| {
            Error::config(format!(
                "proxy URL {:?} is invalid: {e}",
                redact_userinfo(&p.url)
            ))
        })?;
        if let Some(user) = &p.username {
            let pw = match &p.password {
                Some(s) => resolve_blocking(s, "proxy password")?,
                None => String::new(),
            };
            proxy = proxy.basic_auth(user, &pw);
        }
        if let Some(np) = &p.no_proxy {
            proxy = proxy.no_proxy(reqwest::NoProxy::from_string(np));
        }
        b = b.proxy(proxy);
    } else if !cfg.system_proxy {
        b = b.no_proxy();
    }
    Ok(b)
}

/// Reads a secret from synchronous code (`Client::new`) exactly as [`crate::Secret::resolve`]
/// does for every other secret: the same deadline for a command, and an empty value refused.
/// It runs on a thread of its own with a small runtime, so it works whether or not the caller
/// is inside a Tokio runtime.
fn resolve_blocking(s: &crate::Secret, what: &str) -> Result<String, Error> {
    let resolved = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::config(format!("cannot read the {what}: {e}")))?
                    .block_on(s.resolve())
            })
            .join()
    });
    match resolved {
        Ok(Ok(v)) => Ok(v.expose_secret().to_string()),
        Ok(Err(Error::Auth { message })) => Err(Error::config(format!("{what}: {message}"))),
        Ok(Err(e)) => Err(Error::config(format!("{what}: {e}"))),
        Err(_) => Err(Error::config(format!("cannot read the {what}"))),
    }
}

/// A proxy URL with the password of its `user:pass@` replaced, for messages and `Debug`.
pub(crate) fn redact_userinfo(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!(
                "{}{user}:{}{}",
                &raw[..start],
                crate::observe::REDACTED,
                &rest[at..]
            )
        }
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_proxy_url_is_redacted() {
        assert_eq!(
            redact_userinfo("http://ops:s3cr%40t@proxy:3128/x@y"),
            "http://ops:<redacted>@proxy:3128/x@y"
        );
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_userinfo("ops:pw@proxy:1"), "ops:<redacted>@proxy:1");
    }

    #[test]
    fn an_invalid_proxy_url_is_reported_without_its_password() {
        let cfg = ClientConfig::default().proxy(crate::ProxyConfig {
            url: "http://ops:hunter2@[::bad".into(),
            username: None,
            password: None,
            no_proxy: None,
        });
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let e = configure(reqwest::Client::builder(), &cfg).err().unwrap();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
