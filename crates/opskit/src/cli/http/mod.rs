//! `opskit http METHOD URL [ITEM]...`, the `get|post|put|patch|delete` shortcuts and
//! `opskit config path|show|check`.
//!
//! argv → [`args`] → [`plan`] (flags + profile + [`items`]) → `--offline`/`--curl` ([`show`]) or
//! [`exchange`] (the `opskit-http` engine) → [`render`] (+ [`filter`]) → stdout.

pub mod args;
pub mod exchange;
pub mod filename;
pub mod filter;
pub mod items;
pub mod many;
pub mod plan;
pub mod profile;
pub mod render;
pub mod request;
pub mod session;
pub mod show;
pub mod timing;
pub mod values;

use std::io::Write;

pub use args::HttpCommand;
use args::{ConfigAction, ShortcutArgs};

use crate::exit::{self, Failure};

impl HttpCommand {
    /// Runs the command and returns the exit code.
    pub fn run(self) -> anyhow::Result<u8> {
        match self {
            HttpCommand::Http(a) => request_command(&a.method, a.rest),
            HttpCommand::Get(a) => request_command("GET", a),
            HttpCommand::Post(a) => request_command("POST", a),
            HttpCommand::Put(a) => request_command("PUT", a),
            HttpCommand::Patch(a) => request_command("PATCH", a),
            HttpCommand::Delete(a) => request_command("DELETE", a),
            HttpCommand::Config { action } => config_command(action),
        }
    }
}

fn request_command(method: &str, a: ShortcutArgs) -> anyhow::Result<u8> {
    if a.opts.input.is_some() {
        return many::run(method, a);
    }
    let plan = plan::build(method, &a.url, &a.items, a.opts)?;
    let mut stdout = crate::output::stdout();
    if plan.offline_or_curl() {
        if plan.curl {
            let (cmd, redacted) = show::curl_command(&plan);
            writeln!(stdout, "{cmd}")?;
            if redacted {
                eprintln!(
                    "note: secrets were written as <redacted> (an inline secret, or a secret \
                     header or query value); give credentials with --auth/--bearer/--api-key or \
                     a profile's auth as env:VAR, file:PATH or cmd:COMMAND to get a runnable \
                     command"
                );
            }
        } else {
            // like HTTPie: the request head and body, or the request parts --print names
            let (h, b) = if plan.print_explicit {
                (plan.parts.req_headers, plan.parts.req_body)
            } else {
                (true, true)
            };
            let text = show::offline_text(&plan, h, b);
            stdout.write_all(text.as_bytes())?;
        }
        return Ok(exit::code::OK);
    }
    let max_time = plan.max_time;
    // a closed or full stdout is decided by the one reporter (`crate::exit::report`)
    crate::block_on(async move {
        let limit = async {
            match max_time {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let timing = plan.timing.clone();
        let outcome = tokio::select! {
            r = exchange::run(plan) => r,
            _ = limit => Err(Failure::new(
                exit::code::NETWORK,
                format!("--max-time {:?} reached before the command finished", max_time.unwrap_or_default()),
            )
            .with_hint("raise --max-time; a partial --download is kept as FILE.part for --continue")
            .into()),
            _ = tokio::signal::ctrl_c() => {
                Err(Failure::new(exit::code::INTERRUPTED, "interrupted").into())
            }
        };
        if let Some(t) = timing {
            t.report(std::time::Instant::now());
        }
        outcome
    })?
}

fn config_command(action: ConfigAction) -> anyhow::Result<u8> {
    let usage = |e: profile::ConfigError| {
        let f = Failure::usage(e.message);
        match e.hint {
            Some(h) => f.with_hint(h),
            None => f,
        }
    };
    let path = profile::config_path().ok_or_else(|| {
        Failure::usage("cannot find a config directory")
            .with_hint("set OPSKIT_CONFIG to a file path")
    })?;
    match action {
        ConfigAction::Path => {
            println!("{}", path.display());
        }
        ConfigAction::Show => match profile::load().map_err(usage)? {
            Some((_, cfg)) => {
                print!("{}", profile::render_redacted(&cfg).map_err(usage)?);
            }
            None => {
                return Err(Failure::usage(format!("{} does not exist", path.display()))
                    .with_hint(
                        "create it with a [profiles.NAME] table; see the README's http section",
                    )
                    .into());
            }
        },
        ConfigAction::Check => match profile::load() {
            Err(e) if !e.problems.is_empty() => {
                // every error of the file, one line each, then the count
                for p in &e.problems {
                    eprintln!("{}", crate::peer_text::line(p));
                }
                return Err(Failure::usage(format!(
                    "{}: {}",
                    path.display(),
                    crate::output::plural(e.problems.len() as u64, "error", "errors")
                ))
                .with_hint("see `opskit http --help` and the README's http section for the keys")
                .into());
            }
            Err(e) => return Err(usage(e).into()),
            Ok(loaded) => match loaded {
                Some((p, cfg)) => {
                    let names: Vec<&str> = cfg.profiles.keys().map(String::as_str).collect();
                    println!(
                        "{}: ok ({}{}{})",
                        p.display(),
                        crate::output::plural(names.len() as u64, "profile", "profiles"),
                        if names.is_empty() { "" } else { ": " },
                        names.join(", ")
                    );
                }
                None => {
                    return Err(Failure::usage(format!("{} does not exist", path.display())).into());
                }
            },
        },
    }
    Ok(exit::code::OK)
}
