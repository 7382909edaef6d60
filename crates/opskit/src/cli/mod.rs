//! The command line: one module per command family.

use std::io::Write as _;

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::{self, EXIT_CODES_HELP};

pub mod api_client;
pub mod digitalocean;
pub mod github;
pub mod http;
pub mod jira;
pub mod monitor;
pub mod net;
pub mod notify;
pub mod prom;
pub mod serve;
pub mod ssh;
mod ssh_inventory;
pub mod vault;

/// The one duration parser (see [`crate::duration`]), re-exported for the command families.
pub use crate::duration::{parse_duration, zero_or_duration};

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
    /// Create the database of `opskit serve` before adding the first user (init).
    Db(serve::DbCommandArgs),
    /// Ports, scans, DNS, waiting for services, echo and file transfer: check, scan, dns, wait,
    /// echo, send, receive.
    Net(net::NetArgs),
    /// Health monitor: check, run (daemon with alerts), status, validate.
    Monitor(monitor::MonitorArgs),
    /// Prometheus: query, range, alerts, rules, targets, series, labels.
    Prom(Box<prom::PromArgs>),
    /// GitHub: issues, repos, issue create, api (every page, ETag cache, rate limits).
    Github(Box<github::GithubArgs>),
    /// DigitalOcean: droplets list, get, action (power_on, reboot, …) and snapshot, with --wait.
    #[command(name = "do")]
    Do(Box<digitalocean::DoArgs>),
    /// Jira: issue create, get, search (every page), comment, transition (Cloud v3 with ADF, or
    /// Data Center with a personal access token).
    Jira(Box<jira::JiraArgs>),
    /// Vault KV v1/v2: kv get, put (values from files or stdin), list, delete, metadata.
    Vault(Box<vault::VaultArgs>),
}

impl Command {
    /// Whether the command sets up logging itself (the servers choose their level and
    /// `--log-format`); every other command gets [`crate::logging::DEFAULT_FILTER`].
    pub fn sets_up_logging(&self) -> bool {
        matches!(self, Command::Serve(_) | Command::Monitor(_))
    }

    /// Runs the command and returns the exit code.
    pub fn run(self) -> anyhow::Result<u8> {
        match self {
            Command::Http(cmd) => cmd.run(),
            Command::Completions { shell } => {
                // Generated into memory (clap_complete panics on a failed write), then written
                // through the one stdout whose errors the reporter understands.
                let mut cmd = Cli::command();
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut cmd, "opskit", &mut script);
                let mut out = crate::output::stdout();
                out.write_all(&script)?;
                out.flush()?;
                Ok(exit::code::OK)
            }
            Command::Man => {
                let mut out = crate::output::stdout();
                out.write_all(&man_page()?)?;
                out.flush()?;
                Ok(exit::code::OK)
            }
            Command::Notify { delivery, command } => command.run(&delivery),
            Command::Webhook(command) => command.run(),
            Command::Ssh(args) => args.run(),
            Command::Serve(args) => serve::serve(args),
            Command::User(args) => serve::user(args),
            Command::Apikey(args) => serve::apikey(args),
            Command::Db(args) => serve::db(args),
            Command::Net(args) => args.run(),
            Command::Monitor(args) => args.run(),
            Command::Prom(args) => args.run(),
            Command::Github(args) => args.run(),
            Command::Do(args) => args.run(),
            Command::Jira(args) => args.run(),
            Command::Vault(args) => args.run(),
        }
    }
}

/// The one man page, `opskit(1)`. clap_mangen's command list names a page per command
/// (`opskit-net(1)`, …) that is never installed, so the commands are listed here instead, with
/// where their details are (`opskit COMMAND --help`).
fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    // Each piece is written whole and ends its line (clap_mangen's pieces do not).
    let end_line = |page: &mut Vec<u8>| {
        if !page.ends_with(b"\n") {
            page.push(b'\n');
        }
    };
    man.render_title(&mut page)?;
    end_line(&mut page);
    man.render_name_section(&mut page)?;
    end_line(&mut page);
    man.render_synopsis_section(&mut page)?;
    end_line(&mut page);
    man.render_description_section(&mut page)?;
    end_line(&mut page);
    man.render_options_section(&mut page)?;
    end_line(&mut page);
    page.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        page.extend_from_slice(
            format!(
                ".TP\n\\fBopskit {}\\fR\n{}\n",
                roff_text(sub.get_name()),
                roff_text(&about)
            )
            .as_bytes(),
        );
    }
    page.extend_from_slice(b".PP\nThe flags of each command: \\fBopskit COMMAND \\-\\-help\\fR.\n");
    man.render_extra_section(&mut page)?;
    end_line(&mut page);
    man.render_version_section(&mut page)?;
    end_line(&mut page);
    Ok(page)
}

/// Text for a roff line: backslashes and dashes escaped, no control character at the start.
fn roff_text(s: &str) -> String {
    let text = s.replace('\\', "\\\\").replace('-', "\\-");
    let text = text.replace('\n', " ");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
