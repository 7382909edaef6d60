//! The command line: one module per command family.

pub mod http;

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
        }
    }
}
