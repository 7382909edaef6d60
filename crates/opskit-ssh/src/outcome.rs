//! Per-host outcomes, reports and progress events.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The phase a timeout hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect, SSH handshake and host-key check (`--connect-timeout`).
    Connect,
    /// Authentication.
    Auth,
    /// The command or transfer itself (`--timeout`, the whole per-host deadline).
    Command,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Auth => "auth",
            Phase::Command => "command",
        }
    }
}

/// How one host ended: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited 0 (or the transfer completed).
    Ok,
    /// The command exited non-zero (`exit_code`), or a transfer failed (`exit_code` is `None`,
    /// the report's `message` says why).
    Failed { exit_code: Option<u32> },
    /// The command was killed by a signal (`TERM`, `KILL`, …).
    Signal { name: String },
    /// The channel closed without an exit status or signal.
    NoExitStatus,
    /// A deadline passed.
    Timeout { phase: Phase },
    /// The host could not be reached (name, TCP or SSH handshake failure).
    Unreachable,
    /// Every authentication method was refused.
    AuthFailed,
    /// The host key is not in known_hosts.
    HostkeyUnknown,
    /// known_hosts lists a different key for this host, or the key is marked `@revoked`.
    HostkeyChanged,
    /// Not started because an earlier host failed under `--fail-fast`.
    Skipped,
}

impl Outcome {
    /// The status name shown in output and JSON.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed { .. } => "failed",
            Outcome::Signal { .. } => "signal",
            Outcome::NoExitStatus => "no_exit_status",
            Outcome::Timeout { .. } => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::AuthFailed => "auth_failed",
            Outcome::HostkeyUnknown => "hostkey_unknown",
            Outcome::HostkeyChanged => "hostkey_changed",
            Outcome::Skipped => "skipped",
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// The remote exit code, when the command reported one.
    pub fn exit_code(&self) -> Option<u32> {
        match self {
            Outcome::Ok => Some(0),
            Outcome::Failed { exit_code } => *exit_code,
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Failed {
                exit_code: Some(code),
            } => write!(f, "failed (exit {code})"),
            Outcome::Signal { name } => write!(f, "signal ({name})"),
            Outcome::Timeout { phase } => write!(f, "timeout ({})", phase.as_str()),
            other => f.write_str(other.status()),
        }
    }
}

/// The host key a server presented, for messages about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyInfo {
    /// e.g. `ssh-ed25519`.
    pub key_type: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// For a changed or revoked key: `file:line` of the known_hosts entry.
    pub known_at: Option<String>,
    /// True when `--accept-new` recorded this key now.
    pub added: bool,
}

/// One entry of a remote directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: &'static str,
    pub size: u64,
    /// Unix permission bits.
    pub mode: Option<u32>,
    /// Modification time, seconds since the epoch.
    pub mtime: Option<u32>,
}

/// What happened on one host.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// The target as written by the user.
    pub label: String,
    pub host: String,
    pub port: u16,
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub duration: Duration,
    /// Why, in one line, for anything but `ok`/`failed (exit N)`.
    pub message: Option<String>,
    pub host_key: Option<HostKeyInfo>,
    /// `ls`: the entries.
    pub entries: Vec<RemoteEntry>,
    /// `put`/`get`: bytes transferred.
    pub bytes: u64,
}

impl HostReport {
    pub(crate) fn new(label: &str, host: &str, port: u16) -> Self {
        Self {
            label: label.to_string(),
            host: host.to_string(),
            port,
            outcome: Outcome::Ok,
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            message: None,
            host_key: None,
            entries: Vec::new(),
            bytes: 0,
        }
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Things that happen while a fan-out runs; `host` is the index into the targets.
#[derive(Debug, Clone)]
pub enum Event {
    /// A complete line of output (without its newline; the last line may lack one).
    Line {
        host: usize,
        stream: Stream,
        line: Vec<u8>,
    },
    /// Transfer progress.
    Progress { host: usize, done: u64, total: u64 },
    /// A host finished.
    Finished { host: usize, status: &'static str },
}

/// Receives [`Event`]s; called from the tasks doing the work, so keep it quick.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;
