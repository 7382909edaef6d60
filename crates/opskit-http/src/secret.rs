//! Where a secret comes from, and how it is read without ever being printed.
//!
//! `vault:MOUNT/PATH#FIELD` names a field of a HashiCorp Vault KV secret. This crate knows the
//! spelling ([`VaultRef`]) but not Vault's API: the KV client lives in `opskit-apis` (which builds
//! on this crate), and the program installs it once with [`install_vault_reader`]. Without one, a
//! `vault:` secret is an error that says so.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, TimeoutPhase};

/// How long a secret command may run.
pub const SECRET_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A secret and where to read it from. `Debug` never shows the value.
///
/// ```
/// use opskit_http::Secret;
/// let s = Secret::value("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret::Value(<redacted>)");
/// let e = Secret::env("GITHUB_TOKEN");
/// assert_eq!(format!("{e:?}"), "Secret::Env(\"GITHUB_TOKEN\")");
/// ```
#[derive(Clone)]
pub enum Secret {
    /// The value itself.
    Value(SecretString),
    /// The value of an environment variable (read at first use).
    Env(String),
    /// The contents of a file, trailing newline trimmed (read at first use).
    File(PathBuf),
    /// The standard output of a shell command (`sh -c`), trailing newline trimmed,
    /// run at first use with a 10 s deadline.
    Command(String),
    /// A field of a Vault KV secret, `vault:MOUNT/PATH#FIELD` (the text after `vault:`), read at
    /// first use by the installed [`VaultReader`].
    Vault(String),
}

/// A parsed `vault:MOUNT/PATH#FIELD` reference: the secret's path (as written: the logical path
/// `secret/github` or, on a KV v2 mount, the API path `secret/data/github`) and the field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultRef {
    /// `MOUNT/PATH`, without leading or trailing `/`.
    pub path: String,
    /// The key inside the secret.
    pub field: String,
}

impl VaultRef {
    /// Parses the text after `vault:`. The path needs a mount and a name (`secret/github`), the
    /// field follows the last `#`.
    pub fn parse(text: &str) -> Result<VaultRef, String> {
        let bad = |why: &str| {
            format!(
                "`vault:{text}` {why}: write vault:MOUNT/PATH#FIELD (e.g. vault:secret/github#token)"
            )
        };
        let (path, field) = text.rsplit_once('#').ok_or_else(|| bad("names no field"))?;
        let path = path.trim_matches('/');
        if field.is_empty() {
            return Err(bad("names no field"));
        }
        if !path.contains('/') {
            return Err(bad("needs a mount and a path"));
        }
        if path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(bad("has an empty, `.` or `..` path segment"));
        }
        if path.chars().any(|c| c.is_control() || c == '?') {
            return Err(bad("has a control character or `?` in its path"));
        }
        Ok(VaultRef {
            path: path.to_owned(),
            field: field.to_owned(),
        })
    }
}

impl std::fmt::Display for VaultRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vault:{}#{}", self.path, self.field)
    }
}

/// Reads `vault:` references (implemented by `opskit_apis::vault`).
pub trait VaultReader: Send + Sync + 'static {
    /// The field's value. Errors are [`Error::Auth`] (never holding the value) or a deadline's
    /// [`Error::Timeout`].
    fn read<'a>(
        &'a self,
        reference: &'a VaultRef,
    ) -> Pin<Box<dyn Future<Output = Result<SecretString, Error>> + Send + 'a>>;
}

static VAULT_READER: OnceLock<Arc<dyn VaultReader>> = OnceLock::new();

/// Installs the process' reader of `vault:` secrets; the first one installed stays (returns
/// whether this one was).
pub fn install_vault_reader(reader: Arc<dyn VaultReader>) -> bool {
    VAULT_READER.set(reader).is_ok()
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(<redacted>)"),
            Secret::Env(name) => write!(f, "Secret::Env({name:?})"),
            Secret::File(path) => write!(f, "Secret::File({path:?})"),
            Secret::Command(cmd) => write!(f, "Secret::Command({cmd:?})"),
            Secret::Vault(r) => write!(f, "Secret::Vault({r:?})"),
        }
    }
}

impl Secret {
    /// A literal value.
    pub fn value(value: impl Into<String>) -> Self {
        Secret::Value(SecretString::from(value.into()))
    }
    /// Read from an environment variable.
    pub fn env(name: impl Into<String>) -> Self {
        Secret::Env(name.into())
    }
    /// Read from a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Secret::File(path.into())
    }
    /// The output of a shell command.
    pub fn command(command: impl Into<String>) -> Self {
        Secret::Command(command.into())
    }

    /// A field of a Vault KV secret (`MOUNT/PATH#FIELD`).
    pub fn vault(reference: impl Into<String>) -> Self {
        Secret::Vault(reference.into())
    }

    /// Parse the CLI spelling: `env:NAME`, `file:PATH`, `cmd:COMMAND`, `vault:MOUNT/PATH#FIELD`,
    /// or a literal value (`value:TEXT` to force a literal that starts with one of these
    /// prefixes).
    pub fn parse(spec: &str) -> Self {
        if let Some(r) = spec.strip_prefix("vault:") {
            Secret::vault(r)
        } else if let Some(name) = spec.strip_prefix("env:") {
            Secret::env(name)
        } else if let Some(path) = spec.strip_prefix("file:") {
            Secret::file(path)
        } else if let Some(cmd) = spec.strip_prefix("cmd:") {
            Secret::command(cmd)
        } else if let Some(v) = spec.strip_prefix("value:") {
            Secret::value(v)
        } else {
            Secret::value(spec)
        }
    }

    /// Read the secret now.
    pub async fn resolve(&self) -> Result<SecretString, Error> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(Error::auth(format!(
                    "environment variable {name} is empty; set it to the secret"
                ))),
                Err(_) => Err(Error::auth(format!(
                    "environment variable {name} is not set; export it or choose another secret source"
                ))),
            },
            Secret::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    Error::auth(format!("cannot read secret file {}: {e}", path.display()))
                })?;
                let trimmed = text.trim_end_matches(['\n', '\r']);
                if trimmed.is_empty() {
                    return Err(Error::auth(format!(
                        "secret file {} is empty",
                        path.display()
                    )));
                }
                Ok(SecretString::from(trimmed.to_string()))
            }
            Secret::Command(cmd) => {
                let child = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .output();
                let out = tokio::time::timeout(SECRET_COMMAND_TIMEOUT, child)
                    .await
                    .map_err(|_| Error::Timeout {
                        phase: TimeoutPhase::Auth,
                        after: SECRET_COMMAND_TIMEOUT,
                        url: format!("secret command `{cmd}`"),
                    })?
                    .map_err(|e| Error::auth(format!("cannot run secret command `{cmd}`: {e}")))?;
                if !out.status.success() {
                    return Err(Error::auth(format!(
                        "secret command `{cmd}` failed with {}",
                        out.status
                    )));
                }
                let text = String::from_utf8(out.stdout).map_err(|_| {
                    Error::auth(format!("secret command `{cmd}` printed non-UTF-8 output"))
                })?;
                let trimmed = text.trim_end_matches(['\n', '\r']);
                if trimmed.is_empty() {
                    return Err(Error::auth(format!(
                        "secret command `{cmd}` printed nothing"
                    )));
                }
                Ok(SecretString::from(trimmed.to_string()))
            }
            Secret::Vault(text) => {
                let reference = VaultRef::parse(text).map_err(Error::auth)?;
                let reader = VAULT_READER.get().ok_or_else(|| {
                    Error::auth(format!(
                        "{reference}: this program cannot read vault: secrets (no Vault reader installed)"
                    ))
                })?;
                reader.read(&reference).await
            }
        }
    }

    /// A stable description of the source (never the value) for identity hashing.
    pub(crate) fn source_id(&self) -> String {
        match self {
            Secret::Value(_) => "value".into(),
            Secret::Env(n) => format!("env:{n}"),
            Secret::File(p) => format!("file:{}", p.display()),
            Secret::Command(c) => format!("cmd:{c}"),
            Secret::Vault(r) => format!("vault:{r}"),
        }
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Secret::value(v)
    }
}

impl From<String> for Secret {
    fn from(v: String) -> Self {
        Secret::value(v)
    }
}

/// Hash a secret value for use in cache keys (the value itself is never stored).
pub(crate) fn fingerprint(s: &SecretString) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(s.expose_secret().as_bytes());
    hex::encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn vault_references() {
        let r = VaultRef::parse("secret/data/github#token").unwrap();
        assert_eq!(
            (r.path.as_str(), r.field.as_str()),
            ("secret/data/github", "token")
        );
        assert_eq!(r.to_string(), "vault:secret/data/github#token");
        let r = VaultRef::parse("/kv/team/app/#pass#word").unwrap();
        assert_eq!(
            (r.path.as_str(), r.field.as_str()),
            ("kv/team/app/#pass", "word")
        );
        for bad in [
            "secret/github",
            "secret/github#",
            "github#token",
            "a//b#f",
            "a/../b#f",
            "a/b?x#f",
        ] {
            let e = VaultRef::parse(bad).unwrap_err();
            assert!(e.contains("vault:MOUNT/PATH#FIELD"), "{bad}: {e}");
        }
        assert!(matches!(Secret::parse("vault:secret/x#y"), Secret::Vault(t) if t == "secret/x#y"));
        assert!(matches!(
            Secret::parse("value:vault:secret/x#y"),
            Secret::Value(_)
        ));
    }

    #[tokio::test]
    async fn a_malformed_vault_reference_is_an_auth_error_naming_the_spelling() {
        let e = Secret::parse("vault:secret/github")
            .resolve()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("vault:MOUNT/PATH#FIELD"), "{e}");
    }
}
