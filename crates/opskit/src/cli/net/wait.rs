//! `opskit net wait TARGET... [--timeout 60s] [--interval 1s] [-- COMMAND ARGS...]`

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use opskit_net::wait::{StatusSet, WaitEvent, WaitOptions, WaitTarget, wait_all};

use super::parse_duration;
use crate::exit::{Failure, code};
use crate::failure::net as failure;

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: on success, the command's exit status (0 without a command; 126/127 when it cannot
be run, 128+N when killed by signal N); 124 when a target was not ready before --timeout (the
command is not run); 2 for a bad target.")]
pub struct WaitArgs {
    /// Targets: host:port ([v6]:port) for a TCP accept, or an http:// or https:// URL.
    #[arg(value_name = "TARGET", required = true)]
    targets: Vec<String>,
    /// Give up after this long (exit 124).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Pause between two checks of a target that is not ready.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Deadline of one check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    attempt_timeout: Duration,
    /// HTTP statuses that count as ready: codes, ranges, classes (200,204 / 200-399 / 2xx).
    #[arg(long, value_name = "LIST", default_value = "2xx")]
    status: String,
    /// Print nothing while waiting (the final error still goes to stderr).
    #[arg(short, long)]
    quiet: bool,
    /// The command to run once every target is ready, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

impl WaitArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let targets = self
            .targets
            .iter()
            .map(|t| WaitTarget::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failure)?;
        let opts = WaitOptions {
            timeout: self.timeout,
            interval: self.interval,
            attempt_timeout: self.attempt_timeout,
            statuses: StatusSet::parse(&self.status).map_err(failure)?,
        };
        let quiet = self.quiet;
        // Say once per target why it is not ready yet, and when it becomes ready.
        let told = Mutex::new(HashSet::<String>::new());
        let on_event = move |e: WaitEvent<'_>| {
            if quiet {
                return;
            }
            match e {
                WaitEvent::NotReady { target, error, .. } => {
                    if told.lock().is_ok_and(|mut t| t.insert(target.to_owned())) {
                        eprintln!("waiting for {target}: {error}");
                    }
                }
                WaitEvent::Ready(s) => eprintln!("ready: {} (after {:.1}s)", s.target, s.elapsed_s),
            }
        };
        let report =
            crate::block_on(wait_all(&targets, &opts, Some(&on_event)))?.map_err(failure)?;
        if !report.ready {
            let not_ready: Vec<String> = report
                .not_ready()
                .map(|t| {
                    format!(
                        "{} ({})",
                        t.target,
                        t.last_error.as_deref().unwrap_or("not ready")
                    )
                })
                .collect();
            for line in &not_ready {
                eprintln!("not ready: {line}");
            }
            let what = if self.command.is_empty() {
                String::new()
            } else {
                format!("; not running `{}`", self.command.join(" "))
            };
            return Err(Failure::new(
                code::WAIT_TIMEOUT,
                format!(
                    "timed out after {:?}: {} of {} not ready{what}",
                    self.timeout,
                    not_ready.len(),
                    crate::output::plural(report.targets.len() as u64, "target", "targets")
                ),
            )
            .into());
        }
        let Some((program, args)) = self.command.split_first() else {
            return Ok(code::OK);
        };
        let status = match std::process::Command::new(program).args(args).status() {
            Ok(s) => s,
            Err(e) => {
                let (code, hint) = if e.kind() == std::io::ErrorKind::NotFound {
                    (127, "check the command name and PATH")
                } else {
                    (126, "check that the command is executable")
                };
                return Err(Failure::new(code, format!("cannot run `{program}`: {e}"))
                    .with_hint(hint)
                    .into());
            }
        };
        Ok(exit_code_of(status))
    }
}

fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    if let Some(c) = status.code() {
        return u8::try_from(c & 0xff).unwrap_or(code::FAILURE);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(code::FAILURE);
        }
    }
    code::FAILURE
}
