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
        let mut proxy = reqwest::Proxy::all(&p.url)
            .map_err(|e| Error::config(format!("proxy URL {:?} is invalid: {e}", p.url)))?;
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
