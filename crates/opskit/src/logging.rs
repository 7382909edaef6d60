//! Log set-up for the binary, for every command. Logs go to stderr so stdout stays clean for
//! data.
//!
//! `OPSKIT_LOG` (tracing's env-filter syntax, e.g. `debug` or `info,opskit_http=trace`) works for
//! every command: [`crate::run`] installs the subscriber with the default level `warn` before the
//! command runs, except for the long-running servers (`serve`, `monitor`), which call [`init`]
//! themselves with their own default level and `--log-format`. Colour (ANSI escapes) only when
//! stderr is a terminal and `NO_COLOR` is not set: a log written to a file or a pipe is plain
//! text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The level of commands that do not choose one: warnings (a host key that could not be
/// recorded, an HTTP cache that cannot be written) are shown, nothing else.
pub const DEFAULT_FILTER: &str = "warn";

/// Whether log lines on stderr may carry colour.
pub fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. `OPSKIT_LOG` overrides `default`. Only the first call of a
/// process installs anything.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("OPSKIT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color_stderr())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
