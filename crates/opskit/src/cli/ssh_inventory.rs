//! `--inventory SELECTOR`: ssh targets from the `opskit serve` servers API, reached with an http
//! profile (`--profile NAME`: its base URL and auth) through the `opskit-http` engine, every page
//! followed (`Link` header); or, with `--inventory-database URL`, read from serve's database
//! directly (read only), with the same filters.

use futures::StreamExt;
use opskit_http as engine;
use serde_json::Value;
use url::Url;

use opskit_monitor::inventory::{Selector, SelectorError};

use crate::cli::http::exchange::{deadlines_and_retries, profile_auth};
use crate::cli::http::profile::{self, Profile};
use crate::exit::{Failure, code};

/// One server of the inventory, as ssh needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryHost {
    pub hostname: String,
    pub ip: String,
}

/// Parses `env=prod,tag=web` (comma = AND; the one selector syntax, shared with monitor
/// templates); a bad selector is a usage error naming it.
pub fn parse_selector(selector: &str) -> anyhow::Result<Selector> {
    Selector::parse(selector).map_err(|e| {
        Failure::usage(format!("bad --inventory selector `{selector}`: {}", e.why))
            .with_hint(SelectorError::hint())
            .into()
    })
}

/// The servers list URL: `BASE/api/v1/servers`, or `BASE/servers` when the profile's base URL
/// already ends in `/api/v1`.
fn list_url(base: &Url) -> anyhow::Result<Url> {
    let trimmed = base.as_str().trim_end_matches('/');
    let text = if base.path().trim_end_matches('/').ends_with("/api/v1") {
        format!("{trimmed}/servers")
    } else {
        format!("{trimmed}/api/v1/servers")
    };
    Url::parse(&text).map_err(|e| Failure::usage(format!("bad inventory URL `{text}`: {e}")).into())
}

fn client_config(p: &Profile) -> engine::ClientConfig {
    let mut cfg = deadlines_and_retries(
        p.timeout.as_ref().map(|t| t.0),
        p.connect_timeout.as_ref().map(|t| t.0),
        p.retries,
    );
    if let Some(ca) = &p.ca_bundle {
        cfg.tls.ca_bundle = Some(ca.clone());
    }
    if let Some(a) = &p.auth {
        cfg.auth = profile_auth(a);
    }
    cfg.secret_headers = p.secret_headers.clone();
    cfg.secret_query = p.secret_query.clone();
    cfg
}

/// Every server matching `selector`, through the profile `profile_name` (or the config file's
/// default profile). An empty match is an error (exit 1) naming the selector.
pub fn fetch(profile_name: Option<&str>, selector: &str) -> anyhow::Result<Vec<InventoryHost>> {
    let filters = parse_selector(selector)?;
    let selected = profile::select(profile_name).map_err(|e| {
        let f = Failure::usage(e.message);
        match e.hint {
            Some(h) => f.with_hint(h),
            None => f,
        }
    })?;
    let Some((name, prof)) = selected else {
        return Err(Failure::usage("--inventory needs an http profile")
            .with_hint("give --profile NAME (a [profiles.NAME] with base_url and auth in the opskit config file)")
            .into());
    };
    let Some(base) = &prof.base_url else {
        return Err(Failure::usage(format!("profile `{name}` has no base_url"))
            .with_hint("set base_url to the `opskit serve` address, e.g. http://inventory:8080")
            .into());
    };
    let url = list_url(base)?;
    let client = engine::Client::new(client_config(&prof))
        .map_err(|e| crate::cli::http::exchange::failure(e, true))?;
    let servers = crate::block_on(async move {
        let mut rb = client
            .request(engine::Method::GET, url.as_str())
            .header("Accept", "application/json");
        for (k, v) in &prof.headers {
            rb = rb.header(k, v);
        }
        for (k, v) in &prof.query {
            rb = rb.query_pair(k, v);
        }
        for (k, v) in filters.pairs() {
            rb = rb.query_pair(k, v);
        }
        // the largest page the API gives, unless the profile sets its own
        if !prof.query.contains_key("per_page") {
            rb = rb.query_pair("per_page", "200");
        }
        let pages = engine::Paginator::new(engine::PageStyle::LinkHeader).items_at("/data");
        let mut stream = Box::pin(rb.paginate(pages));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let v = item.map_err(|e| crate::cli::http::exchange::failure(e, true))?;
            out.push(host(&v)?);
        }
        anyhow::Ok(out)
    })??;
    if servers.is_empty() {
        return Err(no_match(selector)
            .with_hint(format!(
                "list them with `opskit get /api/v1/servers --profile {name}`"
            ))
            .into());
    }
    Ok(servers)
}

fn no_match(selector: &str) -> Failure {
    Failure::new(
        code::FAILURE,
        format!("no server in the inventory matches `{selector}`"),
    )
}

/// Every server matching `selector`, read from the `opskit serve` database at `url`
/// (`sqlite://FILE` or `postgres://…`), read only: the servers the API would list with the same
/// filters. A database that cannot be opened is an error naming it (password hidden); an empty
/// match is an error (exit 1) naming the selector.
pub fn fetch_database(url: &str, selector: &str) -> anyhow::Result<Vec<InventoryHost>> {
    let filters = parse_selector(selector)?;
    let shown = opskit_server::store::redact_url(url);
    let ro = opskit_server::inventory::read_only_url(url);
    let servers = crate::block_on(async move {
        let db = opskit_server::store::Db::connect_existing(&ro)
            .await
            .map_err(|e| {
                Failure::new(
                    code::FAILURE,
                    format!("cannot open the inventory database {shown}: {e}"),
                )
                .with_hint("give --inventory-database the URL `opskit serve --database` uses")
            })?;
        opskit_server::inventory::list_all(&db, &filters)
            .await
            .map_err(|e| {
                Failure::new(
                    code::FAILURE,
                    format!("cannot read the servers from {shown}: {e}"),
                )
            })
    })??;
    if servers.is_empty() {
        return Err(no_match(selector).into());
    }
    Ok(servers
        .into_iter()
        .map(|s| InventoryHost {
            hostname: s.hostname,
            ip: s.ip,
        })
        .collect())
}

fn host(v: &Value) -> anyhow::Result<InventoryHost> {
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match (field("hostname"), field("ip")) {
        (Some(hostname), Some(ip)) => Ok(InventoryHost { hostname, ip }),
        _ => Err(Failure::new(
            code::FAILURE,
            format!("the inventory returned a server without hostname and ip: {v}"),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector("env=prod,tag=web").unwrap().pairs(),
            [
                ("env".to_owned(), "prod".to_owned()),
                ("tag".to_owned(), "web".to_owned())
            ]
        );
        for bad in ["env", "color=red", "env=", "env=a,env=b", ""] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_urls() {
        let u = |s: &str| list_url(&Url::parse(s).unwrap()).unwrap().to_string();
        assert_eq!(u("http://h:1"), "http://h:1/api/v1/servers");
        assert_eq!(u("http://h:1/api/v1/"), "http://h:1/api/v1/servers");
        assert_eq!(u("http://h/inv/"), "http://h/inv/api/v1/servers");
    }
}
