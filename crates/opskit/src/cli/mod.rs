//! The command line: one module per command family.

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::{self, EXIT_CODES_HELP};

pub mod http;
pub mod monitor;
pub mod net;
pub mod notify;
pub mod serve;
pub mod ssh;

#[derive(Debug, Parser)]
#[command(
    name = "opskit",
    version,
    about = "Call REST APIs, serve an inventory API, run SSH on many hosts and send alerts — carefully.",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// `opskit http|get|post|put|patch|delete|config`.
    #[command(flatten)]
    Http(Box<http::HttpCommand>),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Send alerts to Slack, Teams, Jira or any endpoint as a signed webhook.
    Notify {
        #[command(flatten)]
        delivery: notify::DeliveryArgs,
        #[command(subcommand)]
        command: notify::NotifyCommand,
    },
    /// Sign a webhook body or verify a received delivery (Standard Webhooks, X-Signature).
    #[command(subcommand)]
    Webhook(notify::WebhookCommand),
    /// Run commands and move files (SFTP) on many hosts at once, with strict host-key checking.
    Ssh(Box<ssh::SshArgs>),
    /// Serve the inventory REST API (SQLite by default, or PostgreSQL).
    Serve(serve::ServeArgs),
    /// Manage the users of `opskit serve` (add, passwd, list, remove).
    User(serve::UserArgs),
    /// Manage the API keys of `opskit serve` (create, list, revoke).
    Apikey(serve::ApiKeyArgs),
    /// Ports, scans, DNS, waiting for services, echo and file transfer: check, scan, dns, wait,
    /// echo, send, receive.
    Net(net::NetArgs),
    /// Health monitor: check, run (daemon with alerts), status, validate.
    Monitor(monitor::MonitorArgs),
}

impl Command {
    /// Runs the command and returns the exit code.
    pub fn run(self) -> anyhow::Result<u8> {
        match self {
            Command::Http(cmd) => cmd.run(),
            Command::Completions { shell } => {
                let mut cmd = Cli::command();
                clap_complete::generate(shell, &mut cmd, "opskit", &mut std::io::stdout());
                Ok(exit::code::OK)
            }
            Command::Man => {
                let man = clap_mangen::Man::new(Cli::command());
                man.render(&mut std::io::stdout())?;
                Ok(exit::code::OK)
            }
            Command::Notify { delivery, command } => command.run(&delivery),
            Command::Webhook(command) => command.run(),
            Command::Ssh(args) => args.run(),
            Command::Serve(args) => serve::serve(args),
            Command::User(args) => serve::user(args),
            Command::Apikey(args) => serve::apikey(args),
            Command::Net(args) => args.run(),
            Command::Monitor(args) => args.run(),
        }
    }
}

/// Parses a duration flag: `30s`, `500ms`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 500ms, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s, m or h")),
    };
    if !(secs > 0.0 && secs.is_finite() && secs <= 86_400.0 * 7.0) {
        return Err(format!(
            "{s:?}: a duration must be more than zero and at most a week"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("200h").is_err());
    }
}
