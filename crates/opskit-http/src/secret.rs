//! Where a secret comes from, and how it is read without ever being printed.

use std::path::PathBuf;
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
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret::Value(<redacted>)"),
            Secret::Env(name) => write!(f, "Secret::Env({name:?})"),
            Secret::File(path) => write!(f, "Secret::File({path:?})"),
            Secret::Command(cmd) => write!(f, "Secret::Command({cmd:?})"),
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

    /// Parse the CLI spelling: `env:NAME`, `file:PATH`, `cmd:COMMAND`, or a literal value
    /// (`value:TEXT` to force a literal that starts with one of these prefixes).
    pub fn parse(spec: &str) -> Self {
        if let Some(name) = spec.strip_prefix("env:") {
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
        }
    }

    /// A stable description of the source (never the value) for identity hashing.
    pub(crate) fn source_id(&self) -> String {
        match self {
            Secret::Value(_) => "value".into(),
            Secret::Env(n) => format!("env:{n}"),
            Secret::File(p) => format!("file:{}", p.display()),
            Secret::Command(c) => format!("cmd:{c}"),
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
