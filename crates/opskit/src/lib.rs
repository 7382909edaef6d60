//! The `opskit` command-line tool.
//!
//! `argv` → clap structs ([`cli`]) → a library call → a renderer → stdout. Every error travels up
//! as a value to [`run`], which prints it once (with a hint when there is one) and maps it to a
//! documented exit code ([`exit`]).

pub mod cli;
pub mod exit;
pub mod logging;
pub mod peer_text;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command and turns the outcome into an exit code.
pub fn run() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout and usage errors to stderr.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                exit::code::USAGE
            } else {
                exit::code::OK
            });
        }
    };
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
