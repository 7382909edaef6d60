//! The command line: one module per command family.

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::{self, EXIT_CODES_HELP};

pub mod http;
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
    /// Sockets: echo server/client, checksummed file transfer.
    #[command(subcommand)]
    Net(net::NetCommand),
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
            Command::Net(cmd) => cmd.run(),
        }
    }
}
