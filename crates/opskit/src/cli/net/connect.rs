//! `opskit net connect HOST:PORT` (or `--udp`, or `--unix PATH`): raw bytes between stdin/stdout
//! and a socket, like `nc`, with deadlines and distinct exit codes.
//!
//! The helpers [`SessionArgs`], [`stdio`], [`finish`] and [`failure`] are shared with
//! `net listen`.

use std::fs::File;
use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use opskit_net::Error as NetError;
use opskit_net::raw::{self, BUFFER_SIZE, End, Input, Options, Output, Report};
use opskit_net::target::Endpoint;

use super::parse_duration;
use crate::cli::zero_or_duration;
use crate::exit::{Failure, code};
use crate::output::plural;

/// Flags of a session, the same for `connect` and `listen`.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Close (exit 124) when no byte moved either way for this long (nc -w). Default: no limit.
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// After stdin ends, quit once the peer has sent nothing for this long (0: at once; nc -q,
    /// but counted from the peer's last byte). Default: wait for the peer to close (TCP, Unix),
    /// 1s (connect --udp), forever (listen --udp).
    #[arg(short = 'q', long, value_name = "DURATION", value_parser = zero_or_duration)]
    pub quit_after: Option<Duration>,
    /// Keep the connection's sending side open when stdin ends (default: pass the end on as a
    /// half-close, shutdown(SHUT_WR), like nc -N), for peers that stop at a half-close.
    #[arg(long)]
    pub no_shutdown: bool,
    /// Say on stderr who connected and how many bytes moved.
    #[arg(short, long)]
    pub verbose: bool,
}

impl SessionArgs {
    pub fn options(&self, end_on_peer_close: bool, udp_default_quit: Option<Duration>) -> Options {
        Options {
            idle_timeout: self.idle_timeout,
            quit_after_eof: self.quit_after.or(udp_default_quit),
            half_close: !self.no_shutdown,
            end_on_peer_close,
        }
    }
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Where to connect: host:port (IPv6 as [addr]:port).
    #[arg(value_name = "HOST:PORT", required_unless_present = "unix")]
    target: Option<String>,
    /// UDP: each stdin line is one datagram; datagrams received are printed as they come.
    #[arg(short = 'u', long, conflicts_with = "unix")]
    udp: bool,
    /// Connect to a Unix stream socket at PATH instead.
    #[arg(short = 'U', long, value_name = "PATH", conflicts_with = "target")]
    unix: Option<PathBuf>,
    /// Deadline for name resolution and connecting (exit 124 when it passes).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    #[command(flatten)]
    session: SessionArgs,
}

/// `opskit_net::Error` of a raw session → exit code and hint: 3 refused, unreachable or broken,
/// 68 the name does not resolve, 124 a deadline (connect, accept, idle), 1 cannot listen; the
/// rest as every net command maps them.
pub fn failure(e: NetError) -> anyhow::Error {
    use std::io::ErrorKind as K;
    let text = e.to_string();
    let f = match &e {
        NetError::Resolve { name, .. } => Failure::new(code::NO_SUCH_HOST, text).with_hint(
            format!("check the name; `opskit net dns {name}` shows what it resolves to"),
        ),
        NetError::ConnectTimeout { .. } => Failure::new(code::WAIT_TIMEOUT, text).with_hint(
            "nothing answered: a firewall dropping packets or a wrong address; raise \
             --connect-timeout if the peer is just slow",
        ),
        NetError::AcceptTimeout { .. } => Failure::new(code::WAIT_TIMEOUT, text)
            .with_hint("check that the client connects to this address, or raise --accept-timeout"),
        NetError::Idle { .. } => Failure::new(code::WAIT_TIMEOUT, text).with_hint(
            "raise -w/--idle-timeout, or leave it out to wait while the peer is connected",
        ),
        NetError::Connect { source, .. } if source.kind() == K::ConnectionRefused => Failure::new(
            code::NETWORK,
            text,
        )
        .with_hint(
            "nothing listens on that port: is the service running, on this address and protocol?",
        ),
        NetError::ConnectUnix { source, .. } => {
            let hint = match source.kind() {
                K::NotFound => "no socket at that path: is the service running?",
                K::ConnectionRefused => "the socket file is stale: nothing listens on it",
                K::PermissionDenied => "you may not use that socket: check its owner and mode",
                _ => "is the service running and listening on that path?",
            };
            Failure::new(code::NETWORK, text).with_hint(hint)
        }
        NetError::Broken { .. } => Failure::new(code::NETWORK, text).with_hint(
            "the peer reset the connection: it stopped, or did not read all it was sent",
        ),
        NetError::Bind { addr, source } if source.kind() == K::AddrInUse => {
            Failure::new(code::FAILURE, text).with_hint(format!(
                "another process listens on {addr} (`ss -ltnup 'sport = :{}'` shows which); \
                 choose another port or stop it",
                addr.port()
            ))
        }
        NetError::Bind { source, .. } if source.kind() == K::PermissionDenied => {
            Failure::new(code::FAILURE, text)
                .with_hint("ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another")
        }
        NetError::BindUnix { .. } => Failure::new(code::FAILURE, text),
        _ => return crate::failure::net(e),
    };
    f.into()
}

/// stdin and stdout as raw files, each read or written on a thread of its own.
pub fn stdio() -> anyhow::Result<(Input, Output)> {
    let local = |what: &str, e: std::io::Error| -> anyhow::Error {
        Failure::new(code::FAILURE, format!("cannot use {what}: {e}")).into()
    };
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| local("stdin", e))?;
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| local("stdout", e))?;
    let input = Input::spawn(File::from(stdin), BUFFER_SIZE).map_err(|e| local("stdin", e))?;
    let output = Output::spawn(File::from(stdout)).map_err(|e| local("stdout", e))?;
    Ok((input, output))
}

/// Waits for stdout to take everything; a closed stdout (`| head`) is a quiet success, any
/// other write error exit 1.
pub async fn finish(output: &mut Output) -> anyhow::Result<()> {
    match output.finish().await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(code::FAILURE, format!("cannot write to stdout: {e}")).into()),
    }
}

/// The `-v` line at the end of a session.
pub fn summary(peer: &str, report: &Report) {
    let how = match report.end {
        End::Done => "closed",
        End::PeerClosed => "closed by the peer",
        End::Quiet => "quiet after stdin ended",
        End::OutputClosed => "stdout closed",
    };
    let (ds, dr) = report.datagrams;
    if ds + dr > 0 {
        eprintln!(
            "{peer}: {how}; sent {} ({}), received {} ({})",
            plural(report.sent, "byte", "bytes"),
            plural(ds, "datagram", "datagrams"),
            plural(report.received, "byte", "bytes"),
            plural(dr, "datagram", "datagrams"),
        );
    } else {
        eprintln!(
            "{peer}: {how}; sent {}, received {}",
            plural(report.sent, "byte", "bytes"),
            plural(report.received, "byte", "bytes"),
        );
    }
}

/// Runs `work` until it ends or Ctrl-C (exit 130).
pub async fn interruptible(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<u8> {
    tokio::select! {
        r = work => r.map(|()| code::OK),
        _ = tokio::signal::ctrl_c() => Ok(code::INTERRUPTED),
    }
}

/// Waits for stdout to take what arrived before the end (at most 5 s: a stuck terminal does not
/// hold us), then gives the outcome.
pub async fn conclude(outcome: anyhow::Result<u8>, output: &mut Output) -> anyhow::Result<u8> {
    let flushed = tokio::time::timeout(Duration::from_secs(5), finish(output)).await;
    let code = outcome?;
    if let Ok(r) = flushed {
        r?;
    }
    Ok(code)
}

impl ConnectArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let endpoint = match &self.target {
            Some(t) => Some(Endpoint::parse(t).map_err(failure)?),
            None => None,
        };
        // a person at a terminal: the peer's close ends it (nothing typed can be lost)
        let end_on_peer_close = std::io::stdin().is_terminal();
        let udp_quit = self.udp.then_some(Duration::from_secs(1));
        let opts = self.session.options(end_on_peer_close, udp_quit);
        let verbose = self.session.verbose;
        let timeout = self.connect_timeout;
        crate::block_on(async move {
            let (mut input, mut output) = stdio()?;
            let work = async {
                let (peer, report) = match (&self.unix, endpoint) {
                    (Some(path), _) => {
                        let stream = raw::stream::connect_unix(path, timeout)
                            .await
                            .map_err(failure)?;
                        let peer = format!("unix:{}", path.display());
                        if verbose {
                            eprintln!("connected to {peer}");
                        }
                        let (r, w) = stream.into_split();
                        let report = raw::stream::pump(r, w, &peer, &mut input, &output, &opts)
                            .await
                            .map_err(failure)?;
                        (peer, report)
                    }
                    (None, Some(endpoint)) if self.udp => {
                        let (socket, addr) = raw::udp::connect(&endpoint, timeout)
                            .await
                            .map_err(failure)?;
                        let peer = format!("udp://{addr}");
                        if verbose {
                            eprintln!("sending to {peer}");
                        }
                        let report = raw::udp::session(
                            &socket,
                            Some(addr),
                            false,
                            &mut input,
                            &output,
                            &opts,
                        )
                        .await
                        .map_err(failure)?;
                        (peer, report)
                    }
                    (None, Some(endpoint)) => {
                        let stream = raw::stream::connect_tcp(&endpoint, timeout)
                            .await
                            .map_err(failure)?;
                        let peer = stream
                            .peer_addr()
                            .map_or_else(|_| endpoint.to_string(), |a| format!("tcp://{a}"));
                        if verbose {
                            eprintln!("connected to {peer}");
                        }
                        let (r, w) = stream.into_split();
                        let report = raw::stream::pump(r, w, &peer, &mut input, &output, &opts)
                            .await
                            .map_err(failure)?;
                        (peer, report)
                    }
                    (None, None) => {
                        return Err(Failure::usage("give HOST:PORT or --unix PATH").into());
                    }
                };
                if verbose {
                    summary(&peer, &report);
                }
                Ok(())
            };
            let outcome = interruptible(work).await;
            conclude(outcome, &mut output).await
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(e: NetError) -> u8 {
        failure(e)
            .downcast_ref::<Failure>()
            .map_or(code::FAILURE, |f| f.code)
    }

    /// A name that does not resolve is 68, whatever the resolver said (the binary tests cannot
    /// show it: the system resolver here is not on loopback); the deadlines are 124.
    #[test]
    fn each_end_has_its_exit_code() {
        let resolve = NetError::Resolve {
            name: "db01.invalid".into(),
            reason: "Name or service not known".into(),
        };
        let hint = failure(NetError::Resolve {
            name: "db01.invalid".into(),
            reason: String::new(),
        })
        .downcast_ref::<Failure>()
        .and_then(|f| f.hint.clone())
        .unwrap_or_default();
        assert!(hint.contains("opskit net dns db01.invalid"), "{hint}");
        assert_eq!(code_of(resolve), code::NO_SUCH_HOST);
        let after = Duration::from_secs(1);
        assert_eq!(
            code_of(NetError::ConnectTimeout {
                target: "x:1".into(),
                after
            }),
            code::WAIT_TIMEOUT
        );
        assert_eq!(
            code_of(NetError::Idle {
                peer: "x".into(),
                after
            }),
            code::WAIT_TIMEOUT
        );
        let refused = NetError::Connect {
            addr: "127.0.0.1:9".parse().unwrap(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(code_of(refused), code::NETWORK);
    }
}
