//! The `opskit` command-line tool.
//!
//! `argv` → clap structs ([`cli`]) → a library call → a renderer → stdout. Every error travels up
//! as a value to [`run`], which prints it once (with a hint when there is one) and maps it to a
//! documented exit code ([`exit`]).

pub mod cli;
pub mod duration;
pub mod exit;
pub mod failure;
pub mod logging;
pub mod output;
pub mod peer_text;
pub mod secret_arg;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command and turns the outcome into an exit code.
pub fn run() -> ExitCode {
    exit::install_stdout_panic_guard();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout and usage errors to stderr.
            if let Err(e) = err.print()
                && !err.use_stderr()
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                eprintln!("error: cannot write to stdout: {e}");
                return ExitCode::from(exit::code::FAILURE);
            }
            return ExitCode::from(if err.use_stderr() {
                exit::code::USAGE
            } else {
                exit::code::OK
            });
        }
    };
    // `vault:` secrets, wherever a secret is taken, read through the one Vault client
    opskit_apis::vault::install_secret_reader();
    if !cli.command.sets_up_logging() {
        logging::init(logging::LogFormat::Text, logging::DEFAULT_FILTER);
    }
    match cli.command.run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => ExitCode::from(exit::report(&err)),
    }
}

/// Runs a future on a fresh multi-threaded tokio runtime; commands that do no I/O never build one.
pub fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            exit::Failure::new(
                exit::code::FAILURE,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    Ok(rt.block_on(fut))
}
