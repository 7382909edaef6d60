//! The crate's one error type. Per-host failures during a run are not errors: they are
//! [`crate::Outcome`]s. These are the problems that stop a run before it starts.

use std::path::PathBuf;

/// Something that prevents opskit-ssh from doing what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target string could not be parsed.
    #[error("bad target {target:?}: {reason}")]
    BadTarget { target: String, reason: String },

    /// The ssh config file uses a directive we do not implement for this host.
    #[error(
        "{path}:{line}: `{directive}` is not supported by opskit ssh (host {host:?}); connect directly or remove the directive"
    )]
    Unsupported {
        path: PathBuf,
        line: usize,
        directive: String,
        host: String,
    },

    /// A config or known_hosts line could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// `--group` names a group the hosts file does not have.
    #[error("{path}: no group `{group}`; the groups are: {}", list_groups(groups))]
    UnknownGroup {
        path: PathBuf,
        group: String,
        groups: Vec<String>,
    },

    /// A private key file could not be read or decoded.
    #[error("cannot load key {path}: {reason}")]
    Key { path: PathBuf, reason: String },

    /// A private key is encrypted and no passphrase was given.
    #[error("key {path} is encrypted and no passphrase was given")]
    KeyEncrypted { path: PathBuf },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn list_groups(groups: &[String]) -> String {
    let mut all = groups.join(", ");
    if all.is_empty() {
        all.push_str("(none: the file has no [group] sections)");
    }
    all.push_str(" (and the implicit `all`, `ungrouped`)");
    all
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
