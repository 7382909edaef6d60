//! TCP connect scans that never lie.
//!
//! - Concurrency is sized from the open-file limit (`RLIMIT_NOFILE`), which [`raise_nofile_limit`]
//!   first raises from the soft to the hard limit where allowed.
//! - Running out of file descriptors (`EMFILE`, `ENFILE`) or local ports (`EADDRNOTAVAIL`) makes
//!   the probe wait and try the same port again; it is never counted as a closed port. If it goes
//!   on for longer than [`ScanOptions::exhaustion_patience`], the scan fails with
//!   [`Error::ResourcesExhausted`] instead of guessing.
//! - A connection whose local and peer address are the same (a TCP self-connect, which happens
//!   on loopback when the kernel picks the probed port as the ephemeral source port) is not an
//!   open port: nothing listens there. Nor are two of our own probes whose SYNs crossed (each
//!   one's source port is the other's target, a TCP simultaneous open): both are counted closed.
//! - Every connect has a deadline; a probe that runs past it is `filtered`.
//! - With [`ScanOptions::banner`], an open port is read from for at most that long: the first
//!   line the service sends (SSH, SMTP, FTP …), escaped and capped ([`banner_text`]), is its
//!   banner; a port that sends nothing has none and costs at most that deadline.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};

use crate::services::service_name;
use crate::target::ScanHost;
use crate::{Error, Result};

/// The state of one scanned port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// Something accepted the connection.
    Open,
    /// The connection was refused (RST), or it turned out to be a self-connect.
    Closed,
    /// No answer before the deadline, or the host/network was unreachable.
    Filtered,
}

impl PortState {
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
        }
    }
}

/// What one connect attempt found.
#[derive(Debug)]
pub enum Attempt {
    /// Connected to something else than ourselves, after this long, from this local address.
    Open(Duration, SocketAddr),
    /// Refused (RST).
    Refused,
    /// The kernel connected the socket to itself: nothing listens on that port.
    SelfConnect,
    /// No answer before the deadline.
    TimedOut,
    /// Host or network unreachable, or another error from the network.
    Unreachable(io::Error),
    /// Out of file descriptors or local ports: try again later, this says nothing about the port.
    Exhausted(io::Error),
}

// EMFILE and ENFILE have the same numbers on Linux, the BSDs and macOS.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
#[cfg(target_os = "linux")]
const ENOBUFS: i32 = 105;
#[cfg(not(target_os = "linux"))]
const ENOBUFS: i32 = 55;

/// Whether an error means "out of local resources" (file descriptors, local ports, buffers):
/// the probe must wait and retry, never conclude anything about the port.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS))
        || matches!(
            e.kind(),
            io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::OutOfMemory
                | io::ErrorKind::WouldBlock
        )
}

/// One connect attempt to `addr` with a fresh socket and a deadline.
///
/// The socket is non-blocking. On loopback and fast links the kernel often settles the
/// connect (refused or established) before `connect` returns: that is read at once with
/// `SO_ERROR` / `getpeername`, without going through the event loop (this halves the system
/// calls of a loopback scan). Otherwise the socket joins the tokio reactor and is awaited with the
/// deadline.
pub async fn attempt(addr: SocketAddr, timeout: Duration) -> Attempt {
    attempt_keeping(addr, timeout, false).await.0
}

/// [`attempt`], and with `keep` the connected stream of an open port (to read its banner).
async fn attempt_keeping(
    addr: SocketAddr,
    timeout: Duration,
    keep: bool,
) -> (Attempt, Option<TcpStream>) {
    use socket2::{Domain, Protocol, Socket, Type};
    let start = Instant::now();
    let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) if is_exhaustion(&e) => return (Attempt::Exhausted(e), None),
        Err(e) => return (Attempt::Unreachable(e), None),
    };
    if let Err(e) = socket.set_nonblocking(true) {
        return (Attempt::Unreachable(e), None);
    }
    // An open port found without the reactor: hand its socket over when asked to.
    let settled_open = |socket: Socket| {
        let found = established(
            &socket.local_addr().ok().and_then(|a| a.as_socket()),
            addr,
            start,
        );
        let stream = (keep && matches!(found, Attempt::Open(..)))
            .then(|| TcpStream::from_std(std::net::TcpStream::from(socket)).ok())
            .flatten();
        (found, stream)
    };
    match socket.connect(&addr.into()) {
        Ok(()) => return settled_open(socket),
        Err(e) if !is_in_progress(&e) => return (classify_connect_error(e), None),
        Err(_) => {}
    }
    // In progress: settled already?
    match socket.take_error() {
        Ok(Some(e)) | Err(e) => return (classify_connect_error(e), None),
        Ok(None) => {}
    }
    if socket.peer_addr().is_ok() {
        return settled_open(socket);
    }
    // Not yet: wait for writability in the reactor, with the deadline.
    let stream = match TcpStream::from_std(std::net::TcpStream::from(socket)) {
        Ok(s) => s,
        Err(e) if is_exhaustion(&e) => return (Attempt::Exhausted(e), None),
        Err(e) => return (Attempt::Unreachable(e), None),
    };
    let left = timeout.saturating_sub(start.elapsed());
    let found = match tokio::time::timeout(left, stream.writable()).await {
        Err(_) => Attempt::TimedOut,
        Ok(Err(e)) => classify_connect_error(e),
        Ok(Ok(())) => match stream.take_error() {
            Ok(Some(e)) | Err(e) => classify_connect_error(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => established(&stream.local_addr().ok(), addr, start),
                Err(e) => classify_connect_error(e),
            },
        },
    };
    let keep = keep && matches!(found, Attempt::Open(..));
    (found, keep.then_some(stream))
}

/// The most bytes read from a port for its banner.
const BANNER_READ: usize = 1024;
/// The most characters of a banner shown (an ellipsis marks a cut).
pub const BANNER_CHARS: usize = 200;

/// Reads what `stream` sends first, until a line end, [`BANNER_READ`] bytes, the peer's close or
/// `deadline`, and returns its first line as [`banner_text`] (`None` when nothing came).
async fn read_banner(mut stream: TcpStream, deadline: Duration) -> Option<String> {
    let mut got: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; BANNER_READ];
    let reading = async {
        while got.len() < BANNER_READ {
            match stream.read(&mut chunk[..BANNER_READ - got.len()]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&chunk[..n]);
                    if chunk[..n].contains(&b'\n') {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(deadline, reading).await;
    banner_text(&got)
}

/// A service's first line made safe to show: up to the first line end (a trailing `\r` dropped),
/// control and invisible formatting characters and bytes that are not UTF-8 escaped (`\x1b`,
/// `\u{202e}`, a backslash as `\\`), at most [`BANNER_CHARS`] characters then `…`. `None` when
/// the line is empty.
///
/// ```
/// use opskit_net::scan::banner_text;
/// assert_eq!(banner_text(b"SSH-2.0-OpenSSH_9.2\r\nmore").as_deref(), Some("SSH-2.0-OpenSSH_9.2"));
/// assert_eq!(banner_text(b"220 hi\x1b[2J\xff").as_deref(), Some("220 hi\\x1b[2J\\xff"));
/// assert_eq!(banner_text(b"\r\n"), None);
/// ```
pub fn banner_text(bytes: &[u8]) -> Option<String> {
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out = String::new();
    let mut shown = 0usize;
    let mut push = |out: &mut String, piece: &str| -> bool {
        if shown >= BANNER_CHARS {
            return false;
        }
        out.push_str(piece);
        shown += 1;
        true
    };
    'all: for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            let piece = match c {
                '\\' => "\\\\".to_owned(),
                '\t' => "\\t".to_owned(),
                '\r' => "\\r".to_owned(),
                c if (c as u32) < 0x80 && c.is_control() => format!("\\x{:02x}", c as u32),
                c if c.is_control() || is_invisible_format(c) => {
                    format!("\\u{{{:x}}}", c as u32)
                }
                c => c.to_string(),
            };
            if !push(&mut out, &piece) {
                out.push('…');
                break 'all;
            }
        }
        for b in chunk.invalid() {
            if !push(&mut out, &format!("\\x{b:02x}")) {
                out.push('…');
                break 'all;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Zero-width and direction-changing characters: they would hide or reorder text on a terminal.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn is_in_progress(e: &io::Error) -> bool {
    // EINPROGRESS (115 on Linux, 36 on the BSDs and macOS) or EAGAIN/EWOULDBLOCK.
    #[cfg(target_os = "linux")]
    const EINPROGRESS: i32 = 115;
    #[cfg(not(target_os = "linux"))]
    const EINPROGRESS: i32 = 36;
    e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock
}

/// A connect that succeeded: open, unless the socket is connected to itself.
fn established(local: &Option<SocketAddr>, peer: SocketAddr, start: Instant) -> Attempt {
    match local {
        Some(local) if *local != peer => Attempt::Open(start.elapsed(), *local),
        // A self-connect, or no local address to tell: not an open port.
        _ => Attempt::SelfConnect,
    }
}

/// One connect attempt with a socket the caller made (bound or not), with a deadline.
pub async fn attempt_with(socket: TcpSocket, addr: SocketAddr, timeout: Duration) -> Attempt {
    let start = Instant::now();
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Err(_) => Attempt::TimedOut,
        Ok(Ok(stream)) => {
            if is_self_connect(&stream) {
                Attempt::SelfConnect
            } else {
                match stream.local_addr() {
                    Ok(local) => Attempt::Open(start.elapsed(), local),
                    Err(_) => Attempt::SelfConnect,
                }
            }
        }
        Ok(Err(e)) => classify_connect_error(e),
    }
}

fn is_self_connect(stream: &TcpStream) -> bool {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) => local == peer,
        // Without both addresses we cannot tell it is a real peer: do not call it open.
        _ => true,
    }
}

fn classify_connect_error(e: io::Error) -> Attempt {
    if is_exhaustion(&e) {
        return Attempt::Exhausted(e);
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => Attempt::Refused,
        io::ErrorKind::TimedOut => Attempt::TimedOut,
        _ => Attempt::Unreachable(e),
    }
}

/// Raises the soft open-file limit to the hard limit where the OS allows it and returns the soft
/// limit in force afterwards. Errors leave the limit as it was.
pub fn raise_nofile_limit() -> u64 {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    current_nofile_limit()
}

/// The soft open-file limit now in force (1024 when it cannot be read).
pub fn current_nofile_limit() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// Most probes in flight at once, whatever the limit.
pub const MAX_CONCURRENCY: usize = 5_000;

/// Probes in flight for a soft open-file limit: a quarter of it (at least 16, at most 256) is
/// kept for everything else the process holds (stdio, the runtime, the resolver, logs).
pub fn concurrency_for_limit(soft_limit: u64) -> usize {
    let reserve = (soft_limit / 4).clamp(16, 256);
    let n = soft_limit.saturating_sub(reserve).max(1);
    usize::try_from(n)
        .unwrap_or(MAX_CONCURRENCY)
        .min(MAX_CONCURRENCY)
}

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Deadline of one connect (default 1 s).
    pub timeout: Duration,
    /// Extra attempts for a port that timed out (default 1).
    pub retries: u32,
    /// Probes in flight; `None` sizes it from the open-file limit after raising it.
    pub concurrency: Option<usize>,
    /// How long a probe may keep waiting for a file descriptor or a local port before the scan
    /// fails (default 60 s).
    pub exhaustion_patience: Duration,
    /// Keep closed and filtered ports in [`ScanReport::ports`] (default: open ports only; the
    /// others are counted).
    pub keep_all: bool,
    /// Read each open port's banner for at most this long (default: no banners).
    pub banner: Option<Duration>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeout: Duration::from_secs(1),
            retries: 1,
            concurrency: None,
            exhaustion_patience: Duration::from_secs(60),
            keep_all: false,
            banner: None,
        }
    }
}

/// One port of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortResult {
    /// The host as given (name or address).
    pub host: String,
    /// The address probed.
    pub ip: IpAddr,
    pub port: u16,
    pub state: PortState,
    /// The well-known service name of the port, if any.
    pub service: Option<&'static str>,
    /// Connect time of an open port, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The first line the service sent (with [`ScanOptions::banner`]), made safe by
    /// [`banner_text`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
}

/// Progress of a scan, reported after every probe.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub open: u64,
}

/// A progress callback (the binary draws a bar with it).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The outcome of a scan.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// Ports sorted by host (in the order given) then port: the open ones, or every one with
    /// [`ScanOptions::keep_all`].
    pub ports: Vec<PortResult>,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// The soft open-file limit during the scan.
    pub nofile_limit: u64,
    /// How many times a probe waited for a file descriptor or a local port.
    pub resource_waits: u64,
    /// Self-connects seen (each counted as closed).
    pub self_connects: u64,
    pub elapsed: Duration,
}

struct Shared {
    hosts: Vec<ScanHost>,
    ports: Vec<u16>,
    opts: ScanOptions,
    next: AtomicU64,
    done: AtomicU64,
    open: AtomicU64,
    waits: AtomicU64,
    self_connects: AtomicU64,
    stop: AtomicBool,
    progress: Option<ProgressFn>,
}

/// Scans every port of every host with TCP connects.
pub async fn scan(
    hosts: Vec<ScanHost>,
    ports: Vec<u16>,
    opts: ScanOptions,
    progress: Option<ProgressFn>,
) -> Result<ScanReport> {
    let start = Instant::now();
    let (nofile_limit, auto) = match opts.concurrency {
        Some(n) => (current_nofile_limit(), n.max(1)),
        None => {
            let soft = raise_nofile_limit();
            (soft, concurrency_for_limit(soft))
        }
    };
    let total = (hosts.len() as u64) * (ports.len() as u64);
    let concurrency = auto
        .min(usize::try_from(total).unwrap_or(usize::MAX))
        .max(1);
    tracing::debug!(probes = total, concurrency, nofile_limit, "scan started");
    let shared = Arc::new(Shared {
        hosts,
        ports,
        opts,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        open: AtomicU64::new(0),
        waits: AtomicU64::new(0),
        self_connects: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        progress,
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let shared = shared.clone();
        workers.spawn(async move { worker(&shared, total).await });
    }
    let mut found: Vec<Found> = Vec::new();
    let (mut closed, mut filtered) = (0u64, 0u64);
    let mut failure: Option<Error> = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(out)) => {
                closed += out.closed;
                filtered += out.filtered;
                found.extend(out.kept);
            }
            Ok(Err(e)) => {
                shared.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
            Err(join) => {
                shared.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(Error::Io {
                    context: "a scan worker stopped".into(),
                    source: io::Error::other(join.to_string()),
                });
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let crossed = uncross(&mut found);
    if !shared.opts.keep_all {
        found.retain(|(_, r, _)| r.state == PortState::Open);
    }
    closed += crossed;
    // Index order is port-major (to spread the load over hosts); report host-major.
    let nhosts = shared.hosts.len() as u64;
    found.sort_by_key(|(i, _, _)| (i % nhosts, i / nhosts));
    Ok(ScanReport {
        ports: found.into_iter().map(|(_, r, _)| r).collect(),
        open: shared.open.load(Ordering::Relaxed) - crossed,
        closed,
        filtered,
        concurrency,
        nofile_limit,
        resource_waits: shared.waits.load(Ordering::Relaxed),
        self_connects: shared.self_connects.load(Ordering::Relaxed) + crossed,
        elapsed: start.elapsed(),
    })
}

/// Cross-connects: two of our own probes whose SYNs crossed (each one's source port is the
/// other's target) get connected to each other with no listener involved. Both look open, with
/// mirrored addresses; neither is. Marks them closed and returns how many there were.
fn uncross(found: &mut [Found]) -> u64 {
    let opened: HashSet<(SocketAddr, SocketAddr)> = found
        .iter()
        .filter_map(|(_, r, local)| local.map(|l| (l, SocketAddr::new(r.ip, r.port))))
        .collect();
    let mut crossed = 0u64;
    for (_, r, local) in found.iter_mut() {
        if let Some(l) = local
            && opened.contains(&(SocketAddr::new(r.ip, r.port), *l))
        {
            tracing::debug!(
                port = r.port,
                "cross-connect between two probes: counted closed"
            );
            r.state = PortState::Closed;
            r.latency_ms = None;
            r.banner = None;
            crossed += 1;
        }
    }
    crossed
}

/// A kept result: its index, the result, and the local address of an open connection.
type Found = (u64, PortResult, Option<SocketAddr>);

struct WorkerOut {
    kept: Vec<Found>,
    closed: u64,
    filtered: u64,
}

async fn worker(shared: &Shared, total: u64) -> Result<WorkerOut> {
    let mut out = WorkerOut {
        kept: Vec::new(),
        closed: 0,
        filtered: 0,
    };
    let nhosts = shared.hosts.len() as u64;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(out);
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return Ok(out);
        }
        let host = &shared.hosts[(i % nhosts) as usize];
        let port = shared.ports[(i / nhosts) as usize];
        let addr = SocketAddr::new(host.ip, port);
        let (state, latency, local, banner) = probe(shared, addr).await?;
        match state {
            PortState::Open => {
                shared.open.fetch_add(1, Ordering::Relaxed);
            }
            PortState::Closed => out.closed += 1,
            PortState::Filtered => out.filtered += 1,
        }
        if state == PortState::Open || shared.opts.keep_all {
            out.kept.push((
                i,
                PortResult {
                    host: host.label.clone(),
                    ip: host.ip,
                    port,
                    state,
                    service: service_name(port),
                    latency_ms: latency.map(|d| d.as_secs_f64() * 1000.0),
                    banner,
                },
                local,
            ));
        }
        let done = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        // Probes that settle at once never await: let the other tasks run now and then.
        if done.is_multiple_of(32) {
            tokio::task::yield_now().await;
        }
        if let Some(progress) = &shared.progress {
            progress(Progress {
                done,
                total,
                open: shared.open.load(Ordering::Relaxed),
            });
        }
    }
}

/// What one probe found: the state, the connect time and local address of an open port, and its
/// banner.
type Probed = (
    PortState,
    Option<Duration>,
    Option<SocketAddr>,
    Option<String>,
);

/// Probes one port: retries timeouts `retries` times, waits out resource exhaustion.
async fn probe(shared: &Shared, addr: SocketAddr) -> Result<Probed> {
    let mut timeouts_left = shared.opts.retries;
    let mut waiting_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(2);
    let banner = shared.opts.banner;
    loop {
        let (found, stream) = attempt_keeping(addr, shared.opts.timeout, banner.is_some()).await;
        match found {
            Attempt::Open(latency, local) => {
                let text = match (stream, banner) {
                    (Some(stream), Some(deadline)) => read_banner(stream, deadline).await,
                    _ => None,
                };
                return Ok((PortState::Open, Some(latency), Some(local), text));
            }
            Attempt::Refused => return Ok((PortState::Closed, None, None, None)),
            Attempt::SelfConnect => {
                shared.self_connects.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%addr, "self-connect: counted closed");
                return Ok((PortState::Closed, None, None, None));
            }
            Attempt::TimedOut if timeouts_left > 0 => timeouts_left -= 1,
            Attempt::TimedOut => return Ok((PortState::Filtered, None, None, None)),
            Attempt::Unreachable(e) => {
                tracing::debug!(%addr, error = %e, "unreachable: counted filtered");
                return Ok((PortState::Filtered, None, None, None));
            }
            Attempt::Exhausted(e) => {
                shared.waits.fetch_add(1, Ordering::Relaxed);
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= shared.opts.exhaustion_patience {
                    return Err(Error::ResourcesExhausted {
                        addr,
                        waited: since.elapsed(),
                        source: e,
                    });
                }
                if shared.stop.load(Ordering::Relaxed) {
                    return Err(Error::ResourcesExhausted {
                        addr,
                        waited: since.elapsed(),
                        source: e,
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_keeps_room_for_the_rest() {
        assert_eq!(concurrency_for_limit(64), 48);
        assert_eq!(concurrency_for_limit(1024), 768);
        assert_eq!(concurrency_for_limit(1_048_576), MAX_CONCURRENCY);
        assert_eq!(concurrency_for_limit(0), 1);
    }

    #[test]
    fn crossed_probes_are_closed_and_real_peers_stay_open() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let open = |i: u64, port: u16, local_port: u16| -> Found {
            (
                i,
                PortResult {
                    host: "127.0.0.1".into(),
                    ip: lo,
                    port,
                    state: PortState::Open,
                    service: None,
                    latency_ms: Some(0.1),
                    banner: None,
                },
                Some(SocketAddr::new(lo, local_port)),
            )
        };
        // 40001 -> 50002 and 50002 -> 40001 met each other; 8080 has a real listener.
        let mut found = vec![
            open(0, 50002, 40001),
            open(1, 40001, 50002),
            open(2, 8080, 40003),
        ];
        assert_eq!(uncross(&mut found), 2);
        let states: Vec<PortState> = found.iter().map(|f| f.1.state).collect();
        assert_eq!(
            states,
            [PortState::Closed, PortState::Closed, PortState::Open]
        );
    }

    #[test]
    fn banners_are_one_line_escaped_and_capped() {
        assert_eq!(
            banner_text(b"220 mail ESMTP\r\n250 more").as_deref(),
            Some("220 mail ESMTP")
        );
        assert_eq!(
            banner_text("a\tb\\c\u{202e}d\x07".as_bytes()).as_deref(),
            Some("a\\tb\\\\c\\u{202e}d\\x07")
        );
        let long = banner_text(&[b'x'; 900]).unwrap();
        assert_eq!(long.chars().count(), BANNER_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(banner_text(b""), None);
    }

    #[test]
    fn exhaustion_is_recognised() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(EMFILE)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(ENFILE)));
        assert!(is_exhaustion(&io::Error::from(
            io::ErrorKind::AddrNotAvailable
        )));
        assert!(!is_exhaustion(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }
}
