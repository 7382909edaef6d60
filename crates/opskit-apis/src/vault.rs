//! HashiCorp Vault's KV secrets engine (v1 and v2) with token auth, as the seeds'
//! `VaultClient.get_secret/set_secret` use it and as the `vault kv` CLI does: the KV version of
//! a path's mount is asked of `sys/internal/ui/mounts/PATH`, and on a v2 mount `data/` (reads,
//! writes, deletes) or `metadata/` (lists, metadata) is put after the mount.
//!
//! Every request carries `X-Vault-Token` (through the engine's auth, so `--verbose` and logs show
//! it redacted), `X-Vault-Request: true`, and `X-Vault-Namespace` when a namespace is set.
//! Vault's error document `{"errors": [...]}` becomes [`Error::Api`] with the status (403 a
//! missing, wrong or unauthorised token; 404 no secret; 400 a request Vault calls invalid).
//!
//! The same client reads `vault:MOUNT/PATH#FIELD` secrets: [`install_secret_reader`] hands
//! [`opskit_http`] a reader that fetches each path once per process.
//!
//! ```no_run
//! # async fn demo() -> Result<(), opskit_apis::Error> {
//! use opskit_apis::vault::Vault;
//! let vault = Vault::from_env(opskit_http::ClientConfig::default())?;
//! let secret = vault.kv_get("secret/myapp/db", None).await?;
//! println!("{:?}", secret.data.and_then(|d| d.get("password").cloned()));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opskit_http::{
    ApiKeyLocation, Auth, Client, ClientConfig, RequestBuilder, Secret, TimeoutPhase, VaultRef,
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::error::Error;

const API: &str = "Vault";

/// The longest a `vault:` secret may take to read (mount lookup and read, retries included).
pub const SECRET_DEADLINE: Duration = Duration::from_secs(30);

/// The KV secrets engine version of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    /// KV v1: the secret is at `MOUNT/PATH`, one version, no metadata.
    V1,
    /// KV v2: `MOUNT/data/PATH` and `MOUNT/metadata/PATH`, versioned.
    V2,
}

impl KvVersion {
    /// `1` or `2`.
    pub fn number(self) -> u8 {
        match self {
            KvVersion::V1 => 1,
            KvVersion::V2 => 2,
        }
    }
}

/// The mount a path is under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount's path with its trailing `/` (`secret/`).
    pub path: String,
    /// Its KV version.
    pub version: KvVersion,
}

/// A KV secret as read.
#[derive(Debug, Clone)]
pub struct KvSecret {
    /// The API path it was read from (`secret/data/app` on v2).
    pub api_path: String,
    /// The mount's KV version.
    pub kv: KvVersion,
    /// The key/value pairs; `None` for a v2 version that was deleted or destroyed (its
    /// `metadata` says which).
    pub data: Option<Map<String, Value>>,
    /// v2: `{created_time, custom_metadata, deletion_time, destroyed, version}`.
    pub metadata: Option<Value>,
    /// Warnings Vault attached to the answer.
    pub warnings: Vec<String>,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The API path written.
    pub api_path: String,
    /// The mount's KV version.
    pub kv: KvVersion,
    /// v2: the new version's `{created_time, custom_metadata, deletion_time, destroyed, version}`.
    pub metadata: Option<Value>,
}

/// The address, token, namespace and CA file of Vault's own tooling (`VAULT_ADDR`,
/// `VAULT_TOKEN` or `~/.vault-token`, `VAULT_NAMESPACE`, `VAULT_CACERT`).
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub addr: Option<String>,
    pub token: Option<Secret>,
    pub namespace: Option<String>,
    pub cacert: Option<PathBuf>,
}

impl Env {
    /// Reads the environment (and `~/.vault-token` when `VAULT_TOKEN` is unset or empty).
    pub fn read() -> Env {
        let var = |n: &str| {
            std::env::var(n)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let token = var("VAULT_TOKEN").map(Secret::value).or_else(|| {
            let file = PathBuf::from(std::env::var_os("HOME")?).join(".vault-token");
            file.is_file().then(|| Secret::file(file))
        });
        Env {
            addr: var("VAULT_ADDR"),
            token,
            namespace: var("VAULT_NAMESPACE"),
            cacert: var("VAULT_CACERT").map(PathBuf::from),
        }
    }
}

/// A client of one Vault server.
#[derive(Debug, Clone)]
pub struct Vault {
    client: Client,
}

impl Vault {
    /// A client of `addr` (`https://vault:8200`; the API is under `/v1/`). `token` goes in
    /// `X-Vault-Token` (without one, `config.auth` is used as it is: a profile's bearer token
    /// works, Vault takes `Authorization: Bearer` too); `namespace` in `X-Vault-Namespace`.
    pub fn new(
        addr: &str,
        token: Option<Secret>,
        namespace: Option<&str>,
        mut config: ClientConfig,
    ) -> Result<Self, Error> {
        let url = url::Url::parse(addr)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the Vault address `{addr}` is not an http:// or https:// URL (e.g. https://vault.example.com:8200)"
                ))
            })?;
        config.base_url = Some(format!("{}/v1/", url.as_str().trim_end_matches('/')));
        config
            .default_headers
            .push(("X-Vault-Request".into(), "true".into()));
        if let Some(ns) = namespace.map(str::trim).filter(|n| !n.is_empty()) {
            config
                .default_headers
                .push(("X-Vault-Namespace".into(), ns.to_owned()));
        }
        if let Some(token) = token {
            config.auth = Auth::ApiKey {
                name: "X-Vault-Token".into(),
                value: token,
                location: ApiKeyLocation::Header,
            };
        }
        Ok(Vault {
            client: Client::new(config)?,
        })
    }

    /// A client from Vault's environment variables ([`Env`]); `VAULT_ADDR` and a token are
    /// required.
    pub fn from_env(mut config: ClientConfig) -> Result<Self, Error> {
        let env = Env::read();
        let addr = env.addr.ok_or_else(|| {
            Error::InvalidInput(
                "VAULT_ADDR is not set: export VAULT_ADDR=https://vault.example.com:8200".into(),
            )
        })?;
        let token = env.token.ok_or_else(|| {
            Error::InvalidInput(
                "no Vault token: set VAULT_TOKEN, or log in with `vault login` (~/.vault-token)"
                    .into(),
            )
        })?;
        if let Some(ca) = env.cacert {
            config.tls.ca_bundle = Some(ca);
        }
        Vault::new(&addr, Some(token), env.namespace.as_deref(), config)
    }

    /// The engine client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The mount `path` is under and its KV version (`GET sys/internal/ui/mounts/PATH`, as the
    /// `vault` CLI asks). A Vault too old for that endpoint (404) is taken as KV v1.
    pub async fn mount(&self, path: &str) -> Result<Mount, Error> {
        let path = clean_path(path)?;
        let rb = self
            .client
            .get(&format!("sys/internal/ui/mounts/{}", encode_path(&path)));
        let (status, body) = self
            .call(rb, &format!("look up the mount of {path}"))
            .await?;
        if status == 404 {
            let first = path.split('/').next().unwrap_or_default();
            return Ok(Mount {
                path: format!("{first}/"),
                version: KvVersion::V1,
            });
        }
        let data = body.get("data").unwrap_or(&Value::Null);
        let mount_path = data
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::Decode {
                url: format!("sys/internal/ui/mounts/{path}"),
                message: "no data.path in the answer".into(),
            })?;
        let version = match data.pointer("/options/version").and_then(Value::as_str) {
            Some("2") => KvVersion::V2,
            _ => KvVersion::V1,
        };
        let mut mount_path = mount_path.to_owned();
        if !mount_path.ends_with('/') {
            mount_path.push('/');
        }
        Ok(Mount {
            path: mount_path,
            version,
        })
    }

    /// Reads the secret at the logical `path` (`secret/app`; `version` on KV v2 only).
    pub async fn kv_get(&self, path: &str, version: Option<u64>) -> Result<KvSecret, Error> {
        let mount = self.mount(path).await?;
        let api_path = match mount.version {
            KvVersion::V1 => {
                if version.is_some() {
                    return Err(v1_has_no(&mount, "versions"));
                }
                clean_path(path)?
            }
            KvVersion::V2 => kv_path(&clean_path(path)?, &mount.path, "data"),
        };
        self.read_at(&api_path, mount.version, version).await
    }

    /// Reads the secret at an API path (`secret/data/app` on v2, `kv/app` on v1).
    async fn read_at(
        &self,
        api_path: &str,
        kv: KvVersion,
        version: Option<u64>,
    ) -> Result<KvSecret, Error> {
        let mut rb = self.client.get(&encode_path(api_path));
        if let Some(v) = version {
            rb = rb.query_pair("version", v.to_string());
        }
        let (status, body) = self.call(rb, &format!("read {api_path}")).await?;
        let warnings = warnings(&body);
        let data = body.get("data").filter(|d| !d.is_null());
        let secret = match kv {
            KvVersion::V1 => KvSecret {
                api_path: api_path.to_owned(),
                kv,
                data: data.and_then(Value::as_object).cloned(),
                metadata: None,
                warnings,
            },
            KvVersion::V2 => KvSecret {
                api_path: api_path.to_owned(),
                kv,
                data: data
                    .and_then(|d| d.get("data"))
                    .and_then(Value::as_object)
                    .cloned(),
                metadata: data.and_then(|d| d.get("metadata")).cloned(),
                warnings,
            },
        };
        // a 404 that carries metadata is a deleted or destroyed version (the CLI shows it)
        if status == 404 && secret.metadata.is_none() {
            return Err(not_found(api_path, &secret.warnings));
        }
        if status != 404 && secret.data.is_none() && kv == KvVersion::V1 {
            return Err(not_found(api_path, &secret.warnings));
        }
        Ok(secret)
    }

    /// Writes `data` as the whole secret at the logical `path` (a new version on KV v2).
    pub async fn kv_put(&self, path: &str, data: Map<String, Value>) -> Result<Written, Error> {
        let mount = self.mount(path).await?;
        let path = clean_path(path)?;
        let (api_path, body) = match mount.version {
            KvVersion::V1 => (path, Value::Object(data)),
            KvVersion::V2 => (kv_path(&path, &mount.path, "data"), json!({"data": data})),
        };
        let rb = self.client.put(&encode_path(&api_path)).json(&body);
        let (status, answer) = self.call(rb, &format!("write {api_path}")).await?;
        if status == 404 {
            return Err(not_found(&api_path, &warnings(&answer)));
        }
        Ok(Written {
            metadata: match mount.version {
                KvVersion::V2 => answer.get("data").filter(|d| !d.is_null()).cloned(),
                KvVersion::V1 => None,
            },
            api_path,
            kv: mount.version,
        })
    }

    /// The keys under the logical `path` (folders end in `/`); an empty or missing folder is
    /// an empty list, as Vault answers both with 404.
    pub async fn kv_list(&self, path: &str) -> Result<Vec<String>, Error> {
        let mount = self.mount(path).await?;
        let path = clean_path(path)?;
        let mut api_path = match mount.version {
            KvVersion::V1 => path,
            KvVersion::V2 => kv_path(&path, &mount.path, "metadata"),
        };
        if !api_path.ends_with('/') {
            api_path.push('/');
        }
        // the `vault` CLI sends LIST as GET ?list=true too
        let rb = self
            .client
            .get(&encode_path(&api_path))
            .query_pair("list", "true");
        let (status, body) = self.call(rb, &format!("list {api_path}")).await?;
        if status == 404 {
            return Ok(Vec::new());
        }
        Ok(body
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes the secret at the logical `path`: on KV v2 a soft delete of the latest version,
    /// or of `versions` (undeletable; the metadata stays); on KV v1 the secret is gone.
    pub async fn kv_delete(&self, path: &str, versions: &[u64]) -> Result<String, Error> {
        let mount = self.mount(path).await?;
        let path = clean_path(path)?;
        let (api_path, rb) = match mount.version {
            KvVersion::V1 if !versions.is_empty() => return Err(v1_has_no(&mount, "versions")),
            KvVersion::V1 => (path.clone(), self.client.delete(&encode_path(&path))),
            KvVersion::V2 if versions.is_empty() => {
                let p = kv_path(&path, &mount.path, "data");
                let rb = self.client.delete(&encode_path(&p));
                (p, rb)
            }
            KvVersion::V2 => {
                let p = kv_path(&path, &mount.path, "delete");
                let rb = self
                    .client
                    .post(&encode_path(&p))
                    .json(&json!({"versions": versions}));
                (p, rb)
            }
        };
        let (status, body) = self.call(rb, &format!("delete {api_path}")).await?;
        if status == 404 {
            return Err(not_found(&api_path, &warnings(&body)));
        }
        Ok(api_path)
    }

    /// The metadata of the secret at the logical `path` (KV v2 only): `current_version`,
    /// `versions` with their times, `custom_metadata`, …
    pub async fn kv_metadata(&self, path: &str) -> Result<Value, Error> {
        let mount = self.mount(path).await?;
        if mount.version == KvVersion::V1 {
            return Err(v1_has_no(&mount, "metadata"));
        }
        let api_path = kv_path(&clean_path(path)?, &mount.path, "metadata");
        let rb = self.client.get(&encode_path(&api_path));
        let (status, body) = self.call(rb, &format!("read {api_path}")).await?;
        match body.get("data").filter(|d| d.is_object()) {
            Some(d) if status != 404 => Ok(d.clone()),
            _ => Err(not_found(&api_path, &warnings(&body))),
        }
    }

    /// The value of a `vault:` reference's field. On a KV v2 mount a path whose part after the
    /// mount starts with `data/` is taken as the API path (`secret/data/github`), any other as
    /// the logical path (`secret/github`, `data/` put in).
    pub async fn read_reference(&self, reference: &VaultRef) -> Result<Map<String, Value>, Error> {
        let path = clean_path(&reference.path)?;
        let mount = self.mount(&path).await?;
        let api_path = match mount.version {
            KvVersion::V1 => path,
            KvVersion::V2 => {
                let suffix = path_after_mount(&path, &mount.path);
                if suffix.starts_with("data/") {
                    path
                } else {
                    kv_path(&path, &mount.path, "data")
                }
            }
        };
        let secret = self.read_at(&api_path, mount.version, None).await?;
        secret.data.ok_or_else(|| {
            let what = match secret.metadata.as_ref() {
                Some(m) if m.get("destroyed") == Some(&Value::Bool(true)) => "destroyed",
                _ => "deleted",
            };
            Error::Api {
                api: API,
                status: 404,
                kind: "not found".into(),
                message: format!("the latest version of {api_path} was {what}"),
                details: Vec::new(),
            }
        })
    }

    /// Sends `rb`; success and 404 come back as (status, body), any other status as Vault's
    /// error.
    async fn call(&self, rb: RequestBuilder, what: &str) -> Result<(u16, Value), Error> {
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let bytes = resp.bytes().await?;
        let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) if (200..300).contains(&status) => {
                    return Err(Error::Decode {
                        url,
                        message: "the answer is not JSON".into(),
                    });
                }
                Err(_) => Value::Null,
            }
        };
        if (200..300).contains(&status) || status == 404 {
            return Ok((status, body));
        }
        let errors: Vec<String> = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .map(clean_error)
                    .collect()
            })
            .unwrap_or_default();
        let said = if errors.is_empty() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                .trim()
                .to_owned();
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                text
            }
        } else {
            errors.join("; ")
        };
        Err(Error::Api {
            api: API,
            status,
            kind: kind_of(status),
            message: format!("{what}: {said}"),
            details: warnings(&body),
        })
    }
}

/// `kind` of an [`Error::Api`] for a Vault status.
fn kind_of(status: u16) -> String {
    match status {
        400 => "invalid request",
        403 => "refused",
        405 => "unsupported operation",
        429 => "quota exceeded",
        500 => "internal error",
        501 => "not initialized",
        503 => "sealed or unavailable",
        _ => "error",
    }
    .into()
}

fn not_found(api_path: &str, warnings: &[String]) -> Error {
    Error::Api {
        api: API,
        status: 404,
        kind: "not found".into(),
        message: format!("no secret at {api_path}"),
        details: warnings.to_vec(),
    }
}

fn v1_has_no(mount: &Mount, what: &str) -> Error {
    Error::InvalidInput(format!(
        "{} is a KV v1 mount: it keeps no {what} (KV v2 does)",
        mount.path
    ))
}

fn warnings(body: &Value) -> Vec<String> {
    body.get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Vault's multierror text `1 error occurred:\n\t* permission denied\n\n` as `permission
/// denied`; any other message trimmed.
fn clean_error(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let multi = lines
        .first()
        .is_some_and(|l| l.ends_with("occurred:") && l.contains("error"));
    if multi {
        lines[1..]
            .iter()
            .map(|l| l.trim_start_matches('*').trim())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        lines.join(" ")
    }
}

/// A path as Vault takes it: no leading or trailing `/` (a trailing one is kept for lists by
/// the caller), no empty, `.` or `..` segment, no `?`, `#` or control character.
fn clean_path(path: &str) -> Result<String, Error> {
    let p = path.trim().trim_matches('/');
    let bad = |why: &str| Error::InvalidInput(format!("`{path}` is not a Vault path: {why}"));
    if p.is_empty() {
        return Err(bad("it is empty (write MOUNT/PATH, e.g. secret/myapp)"));
    }
    if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(bad("it has an empty, `.` or `..` segment"));
    }
    if p.chars().any(|c| c.is_control() || c == '?' || c == '#') {
        return Err(bad("it has `?`, `#` or a control character"));
    }
    Ok(p.to_owned())
}

/// The mount as `path` spells it and the part of `path` after it (`secret/a/b` under
/// `secret/` → (`secret`, `a/b`)). As the `vault` CLI does, leading parts of the mount that the
/// path leaves out (a namespace in the mount, not in the path) are skipped.
fn split_mount(path: &str, mount: &str) -> (String, String) {
    let mut mount = mount.to_owned();
    loop {
        let bare = mount.trim_end_matches('/');
        if path == bare {
            return (bare.to_owned(), String::new());
        }
        if let Some(rest) = path.strip_prefix(mount.as_str()) {
            return (bare.to_owned(), rest.to_owned());
        }
        match mount.split_once('/') {
            Some((_, rest)) if !rest.is_empty() => mount = rest.to_owned(),
            _ => return (String::new(), path.to_owned()),
        }
    }
}

fn path_after_mount(path: &str, mount: &str) -> String {
    split_mount(path, mount).1
}

/// The KV v2 API path: `MOUNT/PREFIX/REST` (`secret/app` → `secret/data/app`), as the `vault kv`
/// CLI builds it (a path given with `data/` gets a second one, as there).
fn kv_path(path: &str, mount: &str, prefix: &str) -> String {
    let (mount, suffix) = split_mount(path, mount);
    [mount.as_str(), prefix, suffix.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes what a URL path would misread (spaces, `%`, non-ASCII); `/` stays.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A secret's fields, each held as a secret.
type Fields = Arc<HashMap<String, SecretString>>;

/// Reads `vault:` secrets for the whole process from `VAULT_ADDR`, `VAULT_TOKEN` (or
/// `~/.vault-token`), `VAULT_NAMESPACE` and `VAULT_CACERT`: each path is fetched once (its
/// fields kept in memory as secrets), within [`SECRET_DEADLINE`].
#[derive(Default)]
pub struct SecretReader {
    cache: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Fields>>>>,
}

impl std::fmt::Debug for SecretReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretReader(<redacted>)")
    }
}

/// Installs the process' reader of `vault:` secrets ([`SecretReader`]) into [`opskit_http`].
pub fn install_secret_reader() {
    opskit_http::install_vault_reader(Arc::new(SecretReader::default()));
}

impl SecretReader {
    async fn fields(&self, reference: &VaultRef) -> Result<Fields, opskit_http::Error> {
        let cell = {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.entry(reference.path.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let fetch = async {
                let vault = Vault::from_env(ClientConfig::default())?;
                vault.read_reference(reference).await
            };
            let data = tokio::time::timeout(SECRET_DEADLINE, fetch)
                .await
                .map_err(|_| opskit_http::Error::Timeout {
                    phase: TimeoutPhase::Auth,
                    after: SECRET_DEADLINE,
                    url: format!("Vault secret {reference}"),
                })?
                .map_err(|e| reference_error(reference, e))?;
            let fields = data
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, SecretString::from(text))
                })
                .collect();
            Ok(Arc::new(fields))
        })
        .await
        .cloned()
    }
}

impl opskit_http::VaultReader for SecretReader {
    fn read<'a>(
        &'a self,
        reference: &'a VaultRef,
    ) -> Pin<Box<dyn Future<Output = Result<SecretString, opskit_http::Error>> + Send + 'a>> {
        Box::pin(async move {
            let fields = self.fields(reference).await?;
            match fields.get(&reference.field) {
                Some(v) if !secrecy::ExposeSecret::expose_secret(v).is_empty() => Ok(v.clone()),
                Some(_) => Err(opskit_http::Error::Auth {
                    message: format!("{reference}: the field `{}` is empty", reference.field),
                }),
                None => {
                    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
                    names.sort_unstable();
                    Err(opskit_http::Error::Auth {
                        message: format!(
                            "{reference}: the secret has no field `{}` (its fields: {})",
                            reference.field,
                            if names.is_empty() {
                                "none".into()
                            } else {
                                names.join(", ")
                            }
                        ),
                    })
                }
            }
        })
    }
}

/// A failed read of a `vault:` secret, as the engine's auth error that names the reference
/// (never a value).
fn reference_error(reference: &VaultRef, e: Error) -> opskit_http::Error {
    let message = match &e {
        Error::Http(h) if h.is_connection() => format!("cannot reach Vault: {h}"),
        Error::Api { status: 403, .. } => format!(
            "{e} (the token from VAULT_TOKEN or ~/.vault-token may not read this path, or it expired)"
        ),
        _ => e.to_string(),
    };
    opskit_http::Error::Auth {
        message: format!("{reference}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kv_v2_paths_as_the_vault_cli_builds_them() {
        assert_eq!(kv_path("secret/app", "secret/", "data"), "secret/data/app");
        assert_eq!(
            kv_path("secret/a/b", "secret/", "metadata"),
            "secret/metadata/a/b"
        );
        assert_eq!(kv_path("secret", "secret/", "metadata"), "secret/metadata");
        assert_eq!(kv_path("team/kv/x", "team/kv/", "data"), "team/kv/data/x");
        // the mount carries a namespace the path leaves out
        assert_eq!(kv_path("kv/x", "ns1/kv/", "data"), "kv/data/x");
        assert_eq!(path_after_mount("secret/data/gh", "secret/"), "data/gh");
    }

    #[test]
    fn paths_are_checked_and_encoded() {
        assert_eq!(clean_path("/secret/app/").unwrap(), "secret/app");
        for bad in ["", "/", "a//b", "a/../b", "a/b?x", "a/b#f"] {
            assert!(clean_path(bad).is_err(), "{bad}");
        }
        assert_eq!(encode_path("secret/my app/é"), "secret/my%20app/%C3%A9");
    }

    #[test]
    fn multierror_text_is_cleaned() {
        assert_eq!(
            clean_error("1 error occurred:\n\t* permission denied\n\n"),
            "permission denied"
        );
        assert_eq!(clean_error("no data provided"), "no data provided");
    }
}
