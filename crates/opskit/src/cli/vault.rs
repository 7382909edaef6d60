//! `opskit vault kv`: HashiCorp Vault's KV secrets engine (v1 and v2, told apart by the mount)
//! through [`opskit_apis::vault`], the one Vault client (the `vault:` secret reference reads
//! through it too).
//!
//! The server is `--address`, else `VAULT_ADDR`, else the base_url of `--profile NAME`. The token
//! is `VAULT_TOKEN`, else the `--profile`'s auth, else `~/.vault-token` (what `vault login`
//! writes); there is no token flag, so it never lands in `ps` or shell history. Values written
//! by `kv put` come from files (`KEY=@FILE`) or stdin (`KEY=-`), never from the command line.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;

use clap::{Args, Subcommand};
use opskit_apis::vault::{self, KvSecret, Vault};
use serde_json::{Map, Value, json};

use super::api_client::{self, ConnArgs};
use crate::exit::{Failure, code};
use crate::output::Format;

#[derive(Debug, Args)]
pub struct VaultArgs {
    /// Vault address, e.g. https://vault.example.com:8200 (the API is under /v1/).
    #[arg(
        long,
        global = true,
        env = "VAULT_ADDR",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub address: Option<String>,
    /// Namespace (Vault Enterprise), sent as X-Vault-Namespace.
    #[arg(
        long,
        global = true,
        env = "VAULT_NAMESPACE",
        value_name = "NS",
        help_heading = "Connection"
    )]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: VaultCommand,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// The KV secrets engine (v1 or v2, as the path's mount is).
    #[command(subcommand)]
    Kv(KvCommand),
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Read a secret: one row per key (a table on a terminal), or one field's value.
    #[command(disable_version_flag = true)]
    Get {
        /// MOUNT/PATH, e.g. secret/myapp (on KV v2, data/ is put in as the vault CLI does).
        path: String,
        /// Print only this field's value (as it is: no quoting; a newline only on a terminal).
        #[arg(long, value_name = "FIELD")]
        field: Option<String>,
        /// KV v2: read this version instead of the latest.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
    },
    /// Write a secret (the whole secret: keys not given are gone; a new version on KV v2).
    /// Values come from files or stdin only: KEY=@FILE, KEY=- (one key may read stdin).
    Put {
        /// MOUNT/PATH.
        path: String,
        /// KEY=@FILE or KEY=- (stdin); KEY=value is refused (ps and shell history would see it).
        #[arg(value_name = "KEY=@FILE|KEY=-", required = true)]
        pairs: Vec<String>,
    },
    /// List the keys under a path (folders end in /); an empty or missing folder lists nothing.
    List {
        /// MOUNT/PATH, e.g. secret/ or secret/myapp/.
        path: String,
    },
    /// Delete a secret: on KV v2 a soft delete of the latest version (or --versions), which
    /// can be undone; on KV v1 the secret is gone.
    Delete {
        /// MOUNT/PATH.
        path: String,
        /// KV v2: delete these versions (comma-separated), not the latest.
        #[arg(long, value_name = "N,N", value_delimiter = ',')]
        versions: Vec<u64>,
    },
    /// KV v2: a secret's metadata, one row per version (JSON: Vault's metadata object).
    Metadata {
        /// MOUNT/PATH.
        path: String,
    },
}

impl VaultArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let ep = api_client::endpoint(
            "vault",
            "--address / VAULT_ADDR",
            self.address.as_deref(),
            None,
            &self.conn,
        )?;
        let mut cfg = ep.config;
        cfg.observer = Some(std::sync::Arc::new(api_client::WaitNotice));
        let env = vault::Env::read();
        if cfg.tls.ca_bundle.is_none() {
            cfg.tls.ca_bundle = env.cacert.clone();
        }
        // VAULT_TOKEN, else the profile's auth, else ~/.vault-token
        let from_env = std::env::var("VAULT_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| opskit_http::Secret::value(t.trim()));
        let token = match from_env {
            Some(t) => Some(t),
            None if ep.profile_auth => None,
            None => Some(env.token.ok_or_else(|| {
                Failure::usage("opskit vault: no Vault token").with_hint(
                    "set VAULT_TOKEN, log in with `vault login` (it writes ~/.vault-token), \
                     or give --profile NAME with an [auth]",
                )
            })?),
        };
        let client =
            Vault::new(&ep.base_url, token, self.namespace.as_deref(), cfg).map_err(failure)?;
        let output = self.conn.output;
        crate::block_on(async move {
            match self.command {
                VaultCommand::Kv(kv) => run_kv(&client, kv, output).await,
            }
        })?
    }
}

async fn run_kv(client: &Vault, command: KvCommand, output: Option<Format>) -> anyhow::Result<u8> {
    match command {
        KvCommand::Get {
            path,
            field,
            version,
        } => {
            let secret = client.kv_get(&path, version).await.map_err(failure)?;
            warn(&secret.warnings);
            let Some(data) = secret.data.clone() else {
                return Err(deleted(&secret));
            };
            if let Some(field) = field {
                return print_field(&secret, &data, &field);
            }
            let format = Format::or_default(output);
            match format {
                Format::Json | Format::Ndjson => {
                    let doc = json!({
                        "path": secret.api_path,
                        "kv_version": secret.kv.number(),
                        "data": data,
                        "metadata": secret.metadata,
                    });
                    let mut out = crate::output::stdout();
                    if format == Format::Json {
                        crate::output::write_json(&mut out, &doc)?;
                    } else {
                        serde_json::to_writer(&mut out, &doc)?;
                        out.write_all(b"\n")?;
                    }
                    out.flush()?;
                }
                Format::Table | Format::Csv => {
                    let rows = data
                        .iter()
                        .map(|(k, v)| json!({"key": k, "value": text_of(v)}))
                        .collect();
                    api_client::print_rows(&["key", "value"], rows, Some(format))?;
                }
            }
            Ok(code::OK)
        }
        KvCommand::Put { path, pairs } => {
            let data = read_pairs(&pairs)?;
            let written = client.kv_put(&path, data).await.map_err(failure)?;
            let meta = written.metadata.unwrap_or(Value::Null);
            let row = json!({
                "path": written.api_path,
                "kv_version": written.kv.number(),
                "version": meta.get("version"),
                "created_time": meta.get("created_time"),
            });
            api_client::print_rows(
                &["path", "kv_version", "version", "created_time"],
                vec![row],
                output,
            )?;
            Ok(code::OK)
        }
        KvCommand::List { path } => {
            let keys = client.kv_list(&path).await.map_err(failure)?;
            let rows = keys.into_iter().map(|k| json!({"key": k})).collect();
            api_client::print_rows(&["key"], rows, output)?;
            Ok(code::OK)
        }
        KvCommand::Delete { path, versions } => {
            let api_path = client.kv_delete(&path, &versions).await.map_err(failure)?;
            let what = if versions.is_empty() {
                String::new()
            } else {
                format!(
                    " (versions {})",
                    versions
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            eprintln!("deleted {api_path}{what}");
            Ok(code::OK)
        }
        KvCommand::Metadata { path } => {
            let meta = client.kv_metadata(&path).await.map_err(failure)?;
            let format = Format::or_default(output);
            if matches!(format, Format::Json | Format::Ndjson) {
                let mut out = crate::output::stdout();
                if format == Format::Json {
                    crate::output::write_json(&mut out, &meta)?;
                } else {
                    serde_json::to_writer(&mut out, &meta)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                return Ok(code::OK);
            }
            let current = meta.get("current_version").and_then(Value::as_u64);
            let mut rows: Vec<(u64, Value)> = meta
                .get("versions")
                .and_then(Value::as_object)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|(n, v)| {
                            let n: u64 = n.parse().ok()?;
                            Some((
                                n,
                                json!({
                                    "version": n,
                                    "current": Some(n) == current,
                                    "created_time": v.get("created_time"),
                                    "deletion_time": v.get("deletion_time"),
                                    "destroyed": v.get("destroyed"),
                                }),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            rows.sort_by_key(|(n, _)| *n);
            api_client::print_rows(
                &[
                    "version",
                    "current",
                    "created_time",
                    "deletion_time",
                    "destroyed",
                ],
                rows.into_iter().map(|(_, r)| r).collect(),
                Some(format),
            )?;
            Ok(code::OK)
        }
    }
}

/// `--field F`: the value as it is (a string's text, other JSON as JSON), a newline after it
/// only on a terminal, so `$(…)` and `> file` get the exact bytes.
fn print_field(secret: &KvSecret, data: &Map<String, Value>, field: &str) -> anyhow::Result<u8> {
    let Some(v) = data.get(field) else {
        let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(Failure::new(
            code::VAULT_NOT_FOUND,
            format!("{} has no field `{field}`", secret.api_path),
        )
        .with_hint(format!("its fields: {}", names.join(", ")))
        .into());
    };
    let mut out = crate::output::stdout();
    out.write_all(text_of(v).as_bytes())?;
    if std::io::stdout().is_terminal() {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(code::OK)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: Vault says: {}", crate::peer_text::line(w));
    }
}

/// A KV v2 version that was deleted or destroyed: Vault answers 404 with its metadata.
fn deleted(secret: &KvSecret) -> anyhow::Error {
    let meta = secret.metadata.as_ref();
    let version = meta.and_then(|m| m.get("version")).and_then(Value::as_u64);
    let destroyed = meta.and_then(|m| m.get("destroyed")) == Some(&Value::Bool(true));
    let when = meta
        .and_then(|m| m.get("deletion_time"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let mut text = format!(
        "version {} of {} was {}",
        version.map_or_else(|| "?".into(), |v| v.to_string()),
        secret.api_path,
        if destroyed { "destroyed" } else { "deleted" }
    );
    if let (false, Some(t)) = (destroyed, when) {
        text.push_str(&format!(" at {t}"));
    }
    let f = Failure::new(code::VAULT_NOT_FOUND, text);
    if destroyed {
        f.into()
    } else {
        f.with_hint("`vault kv undelete` brings it back; --version N reads another version")
            .into()
    }
}

/// `KEY=@FILE` and `KEY=-` as the secret's data; a literal `KEY=value` is refused.
fn read_pairs(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut data = Map::new();
    let mut stdin_used = false;
    for pair in pairs {
        let Some((key, source)) = pair.split_once('=') else {
            return Err(
                Failure::usage(format!("`{pair}` is not KEY=@FILE or KEY=-"))
                    .with_hint("e.g. password=@db-password.txt, or token=- to read it from stdin")
                    .into(),
            );
        };
        if key.is_empty() {
            return Err(Failure::usage(format!("`{pair}`: the key is empty")).into());
        }
        if data.contains_key(key) {
            return Err(Failure::usage(format!("the key `{key}` is given twice")).into());
        }
        let value = if source == "-" {
            if stdin_used {
                return Err(
                    Failure::usage(format!("`{key}=-`: only one key can read stdin"))
                        .with_hint("give the others from files: KEY=@FILE")
                        .into(),
                );
            }
            stdin_used = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::usage(format!("`{key}=-`: cannot read stdin: {e}")))?;
            text
        } else if let Some(file) = source.strip_prefix('@') {
            read_value_file(key, Path::new(file))?
        } else {
            return Err(Failure::usage(format!(
                "`{key}=…`: values are not taken from the command line, where `ps` and shell history see them"
            ))
            .with_hint(format!(
                "write {key}=@FILE to read the value from a file, or {key}=- to read it from stdin \
                 (e.g. printf %s \"$VALUE\" | opskit vault kv put PATH {key}=-)"
            ))
            .into());
        };
        data.insert(key.to_owned(), Value::String(value));
    }
    Ok(data)
}

fn read_value_file(key: &str, path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::usage(format!("`{key}=@{}`: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| {
        Failure::usage(format!(
            "`{key}=@{}`: the file is not UTF-8 text (Vault stores JSON strings); base64 it first",
            path.display()
        ))
        .into()
    })
}

/// Vault's errors as exit codes: a refused token (403) and a missing secret (404) have codes
/// of their own; the rest as every API family maps them ([`crate::failure::apis`]).
pub fn failure(e: opskit_apis::Error) -> anyhow::Error {
    match &e {
        opskit_apis::Error::Api { status: 403, .. } => Failure::new(
            code::VAULT_DENIED,
            e.to_string(),
        )
        .with_hint(
            "the token is missing, wrong or expired, or its policy does not allow this path \
                 (check VAULT_TOKEN or ~/.vault-token; `vault token lookup` shows its policies)",
        )
        .into(),
        opskit_apis::Error::Api { status: 404, .. } => {
            Failure::new(code::VAULT_NOT_FOUND, e.to_string())
                .with_hint("check the path; `opskit vault kv list MOUNT/` shows what is there")
                .into()
        }
        _ => crate::failure::apis(e),
    }
}
