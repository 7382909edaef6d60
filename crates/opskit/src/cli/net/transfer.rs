//! `opskit net send FILE... ADDR` and `opskit net receive`: framed, checksummed, resumable file
//! transfer (wire format in docs/net-transfer.md).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse_duration;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opskit_net::Error;
use opskit_net::transfer::{
    self, Checksum, FileReport, Phase, Progress, ProgressFn, ReceiveOptions, SendOptions,
    SendOutcome, SessionEvent,
};
use serde_json::json;

use crate::exit::{Failure, code};
use crate::failure;
use crate::output::plural;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `--checksum`: the digest the receiver verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChecksumArg {
    /// BLAKE3: fast, the default.
    Blake3,
    /// SHA-256: the digest `sha256sum` prints.
    Sha256,
}

impl From<ChecksumArg> for Checksum {
    fn from(c: ChecksumArg) -> Self {
        match c {
            ChecksumArg::Blake3 => Checksum::Blake3,
            ChecksumArg::Sha256 => Checksum::Sha256,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    override_usage = "opskit net send [OPTIONS] FILE... ADDR\n       opskit net send -r [OPTIONS] DIR ADDR"
)]
pub struct SendArgs {
    /// Files to send (or with `-r` one directory), then the receiver's `host:port` (IPv6 as
    /// `[addr]:port`).
    #[arg(value_name = "FILE|ADDR", num_args = 2.., required = true)]
    args: Vec<String>,
    /// Send a directory tree, as `scp -rp`: every file and directory under DIR (DIR's own
    /// name first: `DIR/a/b`), with modes (setuid, setgid and sticky dropped) and modification
    /// times; each file checksummed and stored atomically. Symbolic links are not followed or
    /// sent: each is skipped with a warning. Needs a receiver of the same release (protocol
    /// version 3).
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Deadline for the TCP connect.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Deadline for each network read or write (the transfer fails when the peer stalls longer).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Checksum computed while sending and verified by the receiver before it stores a file
    /// (the report shows it).
    #[arg(long, value_enum, default_value_t = ChecksumArg::Blake3)]
    checksum: ChecksumArg,
    /// Resumable transfer (give it the first time too): if the connection is cut, the receiver
    /// keeps what arrived, and the next `send --resume` of the same file sends only the rest,
    /// once the digests of the part already there match (a changed file is sent again from the
    /// start).
    #[arg(long)]
    resume: bool,
    /// Output format of the per-file report on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Address to listen on (`0.0.0.0:7070` to accept other hosts).
    #[arg(long, default_value = "127.0.0.1:7070")]
    bind: String,
    /// Directory the files are stored in.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Receive one session (one `opskit net send`) and exit with its outcome.
    #[arg(long)]
    once: bool,
    /// Replace files that already exist (default: refuse them).
    #[arg(long)]
    overwrite: bool,
    /// Deadline for each network read or write.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Refuse files larger than this many bytes.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<u64>,
    /// Sessions received at once (server mode); a connection takes a slot only after its hello.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_sessions: usize,
    /// Deadline for a new connection's hello; a connection that sends none is closed and never
    /// takes a session slot.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hello_timeout: Duration,
    /// Lowest average rate of a file in bytes per second, counted after its first 10 s; a
    /// slower sender is cut off (0 = no minimum).
    #[arg(long, default_value_t = 1024, value_name = "BYTES_PER_S")]
    min_rate: u64,
    /// Deadline for a whole session, from the hello to the last file (default: none).
    #[arg(long, value_parser = parse_duration)]
    session_timeout: Option<Duration>,
    /// Output format of the per-file report on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Resolves `host:port` (names through the system resolver) to its first address.
pub(super) async fn resolve(spec: &str, timeout: Duration) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let usage = || {
        Failure::usage(format!("{spec:?} is not host:port"))
            .with_hint("e.g. 127.0.0.1:7070, [::1]:7070 or myhost:7070")
    };
    let Some((host, port)) = spec.rsplit_once(':') else {
        return Err(usage().into());
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(usage().into());
    }
    let found = tokio::time::timeout(timeout, tokio::net::lookup_host(spec))
        .await
        .map_err(|_| Failure::new(code::NETWORK, format!("resolving {host:?} timed out")))?
        .map_err(|e| Failure::new(code::NETWORK, format!("cannot resolve {host:?}: {e}")))?
        .next();
    found.ok_or_else(|| Failure::new(code::NETWORK, format!("{host:?} has no address")).into())
}

/// One bar on a terminal (hidden otherwise), following the current file.
fn progress_bar(enabled: bool) -> (Option<ProgressFn>, ProgressBar) {
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if enabled && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if bar.is_hidden() {
        return (None, bar);
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>9} {msg:24!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let state = Arc::new(Mutex::new((usize::MAX, Phase::Done)));
    let b = bar.clone();
    let f: ProgressFn = Arc::new(move |p: &Progress<'_>| {
        let Ok(mut last) = state.lock() else { return };
        if *last != (p.index, p.phase) {
            *last = (p.index, p.phase);
            b.reset();
            b.set_length(p.size);
            b.set_prefix(match p.phase {
                Phase::Hashing => "checking",
                Phase::Transferring => "transfer",
                Phase::Done => "done",
            });
            b.set_message(format!("[{}/{}] {}", p.index + 1, p.count, p.name));
        }
        b.set_position(p.done);
    });
    (Some(f), bar)
}

fn print_report(output: Output, verb: &str, f: &FileReport, peer: Option<SocketAddr>) {
    match output {
        Output::Json => {
            let mut v = json!({
                "name": f.name,
                "path": f.path,
                "size": f.size,
                "algorithm": f.algorithm,
                "digest": f.digest,
                "sent": f.sent,
                "resumed_from": f.resumed_from,
                "status": verb,
            });
            if f.directory {
                v["directory"] = json!(true);
            }
            if let Some(p) = peer {
                v["peer"] = json!(p.to_string());
            }
            println!("{v}");
        }
        Output::Text if f.directory => {
            let from = peer.map(|p| format!(" from {p}")).unwrap_or_default();
            println!(
                "{verb} {}/ (directory){from}",
                crate::peer_text::line(&f.name)
            );
        }
        Output::Text => {
            let resumed = if f.resumed_from > 0 {
                format!(
                    "; resumed at byte {}, {} this time",
                    f.resumed_from,
                    plural(f.sent, "byte", "bytes")
                )
            } else {
                String::new()
            };
            let from = peer.map(|p| format!(" from {p}")).unwrap_or_default();
            println!(
                "{verb} {} ({}, {} {}{resumed}){from}",
                f.name,
                plural(f.size, "byte", "bytes"),
                f.algorithm,
                f.digest
            );
        }
    }
}

pub fn send(args: SendArgs) -> anyhow::Result<u8> {
    let mut rest = args.args;
    let addr_spec = rest.pop().unwrap_or_default();
    if rest.is_empty() {
        return Err(
            Failure::usage("give at least one FILE, then the receiver's ADDR")
                .with_hint("opskit net send report.csv 10.0.0.5:7070")
                .into(),
        );
    }
    let files: Vec<PathBuf> = rest.into_iter().map(PathBuf::from).collect();
    if args.recursive && files.len() != 1 {
        return Err(
            Failure::usage("-r sends one directory: give DIR, then the receiver's ADDR")
                .with_hint("opskit net send -r ./site 10.0.0.5:7070 (once per directory)")
                .into(),
        );
    }
    let options = SendOptions {
        connect_timeout: args.connect_timeout,
        idle_timeout: args.timeout,
        checksum: args.checksum.into(),
        resume: args.resume,
    };
    let output = args.output;
    // -r: the tree is walked before connecting; what cannot be sent is said first
    let tree = match (args.recursive, files.first()) {
        (true, Some(dir)) => {
            let tree = transfer::plan_tree(dir).map_err(failure::net)?;
            for (path, why) in &tree.skipped {
                eprintln!(
                    "warning: skipped {}: {why}",
                    crate::peer_text::line(&path.display().to_string())
                );
            }
            Some(tree)
        }
        _ => None,
    };
    crate::block_on(async move {
        let addr = resolve(&addr_spec, options.connect_timeout).await?;
        let (progress, bar) = progress_bar(output == Output::Text);
        let result: Vec<(String, PathBuf, SendOutcome)> = match &tree {
            Some(tree) => transfer::send_tree(addr, tree, &options, progress).await,
            None => transfer::send_each(addr, &files, &options, progress)
                .await
                .map_err(failure::net)?
                .into_iter()
                .map(|(path, outcome)| (shown_name(&path), path, outcome))
                .collect(),
        };
        bar.finish_and_clear();
        // every file's outcome, in order; the exit code is the first failure's
        let mut first_failure: Option<Error> = None;
        for (name, path, outcome) in result {
            match outcome {
                SendOutcome::Sent(f) => print_report(output, "sent", &f, None),
                SendOutcome::Failed(e) => {
                    print_failed(output, &name, &path, &e);
                    first_failure.get_or_insert(e);
                }
                SendOutcome::NotSent => print_not_sent(output, &name, &path),
            }
        }
        match first_failure {
            None => Ok(code::OK),
            Some(e) => Err(failure::net(e)),
        }
    })?
}

/// The name a report shows for `path` (what the receiver sees).
fn shown_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn print_failed(output: Output, name: &str, path: &std::path::Path, e: &Error) {
    let (status, kind) = match e {
        Error::Rejected { kind, .. } => ("refused", Some(kind.to_string())),
        _ => ("failed", None),
    };
    match output {
        Output::Json => println!(
            "{}",
            json!({"name": name, "path": path, "status": status, "kind": kind, "error": e.to_string()})
        ),
        // the receiver's words are peer text: escaped, so they cannot forge lines
        Output::Text => println!(
            "{status} {}: {}",
            crate::peer_text::line(name),
            crate::peer_text::line(&e.to_string())
        ),
    }
}

fn print_not_sent(output: Output, name: &str, path: &std::path::Path) {
    match output {
        Output::Json => println!(
            "{}",
            json!({"name": name, "path": path, "status": "not_sent"})
        ),
        Output::Text => println!(
            "not sent {}: an earlier failure ended the send",
            crate::peer_text::line(name)
        ),
    }
}

pub fn receive(args: ReceiveArgs) -> anyhow::Result<u8> {
    transfer::check_dir(&args.dir).map_err(|e| {
        Failure::usage(e.to_string()).with_hint("create the directory or pass another --dir")
    })?;
    let mut options = ReceiveOptions::new(&args.dir);
    options.overwrite = args.overwrite;
    options.idle_timeout = args.timeout;
    options.max_file_size = args.max_size;
    if args.max_sessions == 0 {
        return Err(Failure::usage("--max-sessions must be at least 1").into());
    }
    options.max_connections = args.max_sessions;
    options.hello_timeout = args.hello_timeout;
    options.min_rate = (args.min_rate > 0).then_some(args.min_rate);
    options.session_timeout = args.session_timeout;
    let output = args.output;
    crate::block_on(async move {
        let addr = resolve(&args.bind, Duration::from_secs(5)).await?;
        let listener = transfer::bind(addr).await.map_err(failure::net)?;
        let local = listener.local_addr().unwrap_or(addr);
        eprintln!(
            "receiving into {} on {local}{}",
            args.dir.display(),
            if args.once { " (one session)" } else { "" }
        );
        if args.once {
            let (progress, bar) = progress_bar(output == Output::Text);
            let result = tokio::select! {
                r = transfer::receive_once(&listener, &options, progress) => r,
                _ = tokio::signal::ctrl_c() => {
                    bar.finish_and_clear();
                    return Ok(code::INTERRUPTED);
                }
            };
            bar.finish_and_clear();
            let files = result.map_err(failure::net)?;
            for f in &files {
                print_report(output, "received", f, None);
            }
            return Ok(code::OK);
        }
        let events: transfer::SessionFn = Arc::new(move |e| match e {
            SessionEvent::Received { peer, file } => {
                print_report(output, "received", &file, Some(peer));
            }
            SessionEvent::Failed { peer, error } => {
                eprintln!("{peer}: {}", crate::peer_text::line(&error.to_string()));
            }
        });
        tokio::select! {
            r = transfer::serve(listener, options, None, events) => {
                r.map_err(failure::net)?;
                Ok(code::OK)
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped");
                Ok(code::OK)
            }
        }
    })?
}
