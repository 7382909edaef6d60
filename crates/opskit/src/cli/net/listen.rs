//! `opskit net listen [--bind ADDR] PORT` (or `--udp`, or `--unix PATH`): accept one connection
//! (or, with `--keep-open`, one after another) and move raw bytes between it and stdin/stdout,
//! like `nc -l`.

use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use opskit_net::raw::{self, End};
use opskit_net::target::{Endpoint, resolve};

use super::connect::{SessionArgs, conclude, failure, interruptible, stdio, summary};
use crate::exit::Failure;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Port to listen on (0: a free one, printed on stderr).
    #[arg(value_name = "PORT", required_unless_present = "unix")]
    port: Option<u16>,
    /// Address to listen on (`0.0.0.0` or `::` to accept other hosts).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1",
        conflicts_with = "unix"
    )]
    bind: String,
    /// UDP: print every datagram received; stdin lines go back as datagrams to the first sender
    /// (with --keep-open: to whoever sent last).
    #[arg(short = 'u', long, conflicts_with = "unix")]
    udp: bool,
    /// Listen on a Unix stream socket at PATH instead (a stale socket file there is replaced
    /// only when nothing listens on it; the file is removed at the end).
    #[arg(short = 'U', long, value_name = "PATH", conflicts_with = "port")]
    unix: Option<PathBuf>,
    /// After a connection ends, accept the next one (stdin goes on to it), until Ctrl-C. Each
    /// connection ends when its peer closes.
    #[arg(short = 'k', long)]
    keep_open: bool,
    /// Exit 124 when nothing connects (or, with --udp, sends) within this long.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    accept_timeout: Option<Duration>,
    #[command(flatten)]
    session: SessionArgs,
}

/// Where to listen: an address (or a name, resolved to its first address) and the port.
async fn local_addr(bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let host = bind.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let endpoint = Endpoint {
        host: host.to_owned(),
        port,
    };
    let addrs = resolve(&endpoint, Duration::from_secs(5))
        .await
        .map_err(failure)?;
    addrs.first().copied().ok_or_else(|| {
        Failure::usage(format!("--bind {bind:?} has no address"))
            .with_hint("give an address such as 127.0.0.1, 0.0.0.0 or ::")
            .into()
    })
}

impl ListenArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        // a person at a terminal, or connection after connection: the peer's close ends one
        let end_on_peer_close = self.keep_open || std::io::stdin().is_terminal();
        let opts = self.session.options(end_on_peer_close, None);
        let verbose = self.session.verbose;
        crate::block_on(async move {
            let (mut input, mut output) = stdio()?;
            let work = async {
                if let Some(path) = &self.unix {
                    let mut socket = Some(raw::stream::bind_unix(path).await.map_err(failure)?);
                    eprintln!("listening on unix:{}", path.display());
                    while let Some(listening) = &socket {
                        let stream = raw::stream::accept_unix(listening, self.accept_timeout)
                            .await
                            .map_err(failure)?;
                        let peer = format!("unix:{}", path.display());
                        if !self.keep_open {
                            // one connection: others are refused from now on (the file goes)
                            socket = None;
                        }
                        if verbose {
                            eprintln!("connection on {peer}");
                        }
                        let (r, w) = stream.into_split();
                        let done = raw::stream::pump(r, w, &peer, &mut input, &output, &opts).await;
                        if after_session(&peer, done, self.keep_open, verbose)? {
                            break;
                        }
                    }
                    return Ok(());
                }
                let port = self.port.unwrap_or(0);
                let addr = local_addr(&self.bind, port).await?;
                if self.udp {
                    let socket = raw::udp::bind(addr).await.map_err(failure)?;
                    let local = socket.local_addr().unwrap_or(addr);
                    eprintln!("listening on udp://{local}");
                    if let Some(after) = self.accept_timeout {
                        // the deadline is for the first datagram only (peeked, not taken)
                        let first = tokio::time::timeout(after, socket.peek_sender()).await;
                        if first.is_err() {
                            return Err(failure(opskit_net::Error::AcceptTimeout {
                                local: format!("udp://{local}"),
                                after,
                            }));
                        }
                    }
                    let report = raw::udp::session(
                        &socket,
                        None,
                        self.keep_open,
                        &mut input,
                        &output,
                        &opts,
                    )
                    .await
                    .map_err(failure)?;
                    if verbose {
                        summary(&format!("udp://{local}"), &report);
                    }
                    return Ok(());
                }
                let mut listener = Some(raw::stream::bind_tcp(addr).await.map_err(failure)?);
                let local = listener
                    .as_ref()
                    .and_then(|l| l.local_addr().ok())
                    .unwrap_or(addr);
                eprintln!("listening on tcp://{local}");
                while let Some(listening) = &listener {
                    let (stream, from) = raw::stream::accept_tcp(listening, self.accept_timeout)
                        .await
                        .map_err(failure)?;
                    if !self.keep_open {
                        // one connection: later ones are refused, as nc -l
                        listener = None;
                    }
                    let peer = format!("tcp://{from}");
                    if verbose {
                        eprintln!("connection from {peer}");
                    }
                    let (r, w) = stream.into_split();
                    let done = raw::stream::pump(r, w, &peer, &mut input, &output, &opts).await;
                    if after_session(&peer, done, self.keep_open, verbose)? {
                        break;
                    }
                }
                Ok(())
            };
            let outcome = interruptible(work).await;
            conclude(outcome, &mut output).await
        })?
    }
}

/// Reports a finished connection; `Ok(true)` when listening should stop (stdout closed). Under
/// `--keep-open` a failed connection is a warning and the next one is accepted.
fn after_session(
    peer: &str,
    done: opskit_net::Result<raw::Report>,
    keep_open: bool,
    verbose: bool,
) -> anyhow::Result<bool> {
    match done {
        Ok(report) => {
            if verbose {
                summary(peer, &report);
            }
            Ok(report.end == End::OutputClosed)
        }
        Err(e) if keep_open => {
            eprintln!(
                "warning: {}",
                crate::peer_text::line(&e.to_string()).into_owned()
            );
            Ok(false)
        }
        Err(e) => Err(failure(e)),
    }
}
