//! The command line: one module per command family.

pub mod serve;

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::{self, EXIT_CODES_HELP};

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
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Serve the inventory REST API (SQLite by default, or PostgreSQL).
    Serve(serve::ServeArgs),
    /// Manage the users of `opskit serve` (add, passwd, list, remove).
    User(serve::UserArgs),
    /// Manage the API keys of `opskit serve` (create, list, revoke).
    Apikey(serve::ApiKeyArgs),
}

impl Command {
    /// Runs the command and returns the exit code.
    pub fn run(self) -> anyhow::Result<u8> {
        match self {
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
            Command::Serve(args) => serve::serve(args),
            Command::User(args) => serve::user(args),
            Command::Apikey(args) => serve::apikey(args),
        }
    }
}
