//! Exit codes and the one place where errors are printed.
//!
//! The codes are part of the interface: scripts branch on them. They are listed in the README and
//! in `opskit --help`.

use std::fmt;

/// The documented exit codes.
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// A failure not covered by a more specific code (I/O, a server error, …).
    pub const FAILURE: u8 = 1;
    /// Bad command line, bad request item, bad config or profile.
    pub const USAGE: u8 = 2;
    /// Could not connect, TLS failure, or a timeout.
    pub const NETWORK: u8 = 3;
    /// `--check-status` and the response was a 4xx.
    pub const HTTP_4XX: u8 = 4;
    /// `--check-status` and the response was a 5xx.
    pub const HTTP_5XX: u8 = 5;
    /// Interrupted by SIGINT (Ctrl-C).
    pub const INTERRUPTED: u8 = 130;
    /// `opskit ssh`: a host key was unknown, changed or revoked (highest priority of the ssh codes).
    pub const SSH_HOSTKEY: u8 = 20;
    /// `opskit ssh`: a host refused every authentication method.
    pub const SSH_AUTH: u8 = 21;
    /// `opskit ssh`: a remote command failed (non-zero exit, signal, no exit status) or a transfer
    /// failed, or a host was skipped under `--fail-fast`; every host was reached.
    pub const SSH_REMOTE: u8 = 22;
    /// `opskit net wait`: a target was not ready before `--timeout` (the command was not run);
    /// `opskit net connect|listen`: a deadline passed (connect, accept, idle).
    pub const WAIT_TIMEOUT: u8 = 124;
    /// `opskit net connect|listen`: the host name did not resolve (sysexits' `EX_NOHOST`).
    pub const NO_SUCH_HOST: u8 = 68;
    /// `opskit monitor import-gatus`: the output was written, but some items were not converted
    /// (each is listed).
    pub const PARTLY_CONVERTED: u8 = 6;
    /// `opskit vault`: Vault refused the token (HTTP 403: missing, wrong or expired, or a policy
    /// that does not allow the path).
    pub const VAULT_DENIED: u8 = 7;
    /// `opskit vault`: no secret (or field) at the path (HTTP 404; a deleted version too).
    pub const VAULT_NOT_FOUND: u8 = 8;
}

/// Text shown at the end of `opskit --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    failure not covered below (I/O, server error)
  2    usage error: bad flag, request item, config or profile
  3    connection failure, TLS failure or timeout
  4    HTTP 4xx response under --check-status
  5    HTTP 5xx response under --check-status
  130  interrupted (Ctrl-C)
  20   ssh: a host key was unknown, changed or revoked
  21   ssh: authentication failed on a host
  22   ssh: a remote command or transfer failed (hosts were reached)
  opskit ssh exits with the first that applies of 20, 21, 3 (unreachable or timeout), 22, 0.
  124  net wait: a target was not ready before --timeout (the command was not run)
  opskit net check exits 1 when a target is not open, 3 when no target answered at all.
  net connect/listen: 3 refused, unreachable or reset; 68 the host name does not resolve;
  124 --connect-timeout, --accept-timeout or -w/--idle-timeout passed.
  6    monitor import-gatus: written, but some items were not converted (listed)
  7    vault: permission denied (HTTP 403: the token is missing, wrong, expired or not allowed)
  8    vault: no secret or field at the path (HTTP 404, or a deleted version)";

/// An error that knows its exit code and, optionally, how to fix it.
#[derive(Debug)]
pub struct Failure {
    /// Exit code from [`code`].
    pub code: u8,
    /// What went wrong, in one line.
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(code::USAGE, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Prints `err` to stderr (with its causes and hint) and returns the exit code to use.
///
/// Stdout errors are decided here, once for every command: a closed pipe (`opskit … | head`)
/// ends the command quietly with success, like other Unix tools; any other stdout error (a full
/// disk) is "cannot write to stdout" with exit 1.
pub fn report(err: &anyhow::Error) -> u8 {
    if let Some(io) = crate::output::stdout_error(err) {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return code::OK;
        }
        eprintln!("error: cannot write to stdout: {io}");
        return code::FAILURE;
    }
    let failure = err.chain().find_map(|e| e.downcast_ref::<Failure>());
    let code = failure.map_or(code::FAILURE, |f| f.code);
    // messages quote servers and peers: no control character of theirs reaches the terminal
    let mut text = format!("error: {}", crate::peer_text::line(&err.to_string()));
    for cause in err.chain().skip(1) {
        let cause = crate::peer_text::line(&cause.to_string()).into_owned();
        if !text.contains(&cause) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
    }
    if let Some(hint) = failure.and_then(|f| f.hint.as_deref()) {
        text.push_str(&format!("\n  hint: {hint}"));
    }
    eprintln!("{text}");
    code
}

/// The safety net for `print!`/`println!` (and libraries that panic on a failed write): the
/// standard library panics when stdout is closed or full. That panic becomes the same outcome as
/// a failed write through [`crate::output::stdout`]: success on a closed pipe, exit 1 with
/// "cannot write to stdout" otherwise. Every other panic keeps the default report.
pub fn install_stdout_panic_guard() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Some(reason) = text.strip_prefix("failed printing to stdout: ") {
            if reason.starts_with("Broken pipe") || reason.contains("os error 32") {
                std::process::exit(i32::from(code::OK));
            }
            eprintln!("error: cannot write to stdout: {reason}");
            std::process::exit(i32::from(code::FAILURE));
        }
        default(info);
    }));
}
