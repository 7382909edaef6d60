//! Framed, checksummed file transfer over TCP: `opskit net send` / `opskit net receive`.
//!
//! The wire format is documented byte by byte in `docs/net-transfer.md`. In short:
//!
//! ```text
//! sender → receiver   hello   "OPSKITXF" | version u16 | reserved u16 | file count u32
//! then per file:
//! sender → receiver   header  len u32 | size u64 | sha256 [32] | name_len u16 | name
//! receiver → sender   reply   len u32 | 0x00 ACCEPT          (or an error reply, then close)
//! sender → receiver   chunks  len u32 | bytes   (1 ..= 1 MiB each, exactly `size` bytes in all)
//! sender → receiver   end     len u32 = 0
//! receiver → sender   reply   len u32 | 0x01 DONE | sha256 [32]   (or an error reply, then close)
//! ```
//!
//! All integers are big-endian. The receiver writes into a temporary file in the target
//! directory, fsyncs it and renames it into place only when both the size and the SHA-256 match
//! the header; any failure (bad name, existing file, corrupt or short stream, dropped connection)
//! removes the temporary file. Every socket read and write has a deadline.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::{Error, Result};

/// First bytes of every session.
pub const MAGIC: [u8; 8] = *b"OPSKITXF";
/// Protocol version spoken here.
pub const VERSION: u16 = 1;
/// Largest data chunk (frame payload) on the wire; the sender uses exactly this size.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// Longest file name, in bytes of UTF-8.
pub const MAX_NAME: usize = 255;
/// Most files in one session.
pub const MAX_FILES: u32 = 100_000;
/// Longest error message in a reply, in bytes.
pub const MAX_MESSAGE: usize = 1024;
/// Size of the hello block.
pub const HELLO_LEN: usize = 16;
/// Fixed part of a file header (size, SHA-256, name length).
pub const HEADER_FIXED: usize = 8 + 32 + 2;

/// Reply status: the header is accepted, send the data.
pub const REPLY_ACCEPT: u8 = 0x00;
/// Reply status: the file is stored; followed by the SHA-256 the receiver computed.
pub const REPLY_DONE: u8 = 0x01;

/// Number of chunk buffers in flight on each side (reading ahead while the other works).
const BUFFERS: usize = 4;
/// After an error reply: how long the receiver reads on (so the reply is not lost to a reset)
/// and the sender waits for that reply after a failed write.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Why a transfer was refused or failed; sent on the wire as the reply status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The file name has a path component or is otherwise unusable (0x10).
    BadName,
    /// A file with that name exists and overwriting was not allowed (0x11).
    Exists,
    /// The data's SHA-256 is not the one in the header (0x12).
    Checksum,
    /// More or fewer bytes than the header announced (0x13).
    Size,
    /// The stream is not valid for this protocol (bad magic, version, frame) (0x14).
    Protocol,
    /// The receiver could not write the file (disk full, permissions) (0x15).
    Io,
    /// The file is larger than the receiver accepts (0x16).
    TooLarge,
    /// A status byte this version does not know.
    Unknown(u8),
}

impl FailureKind {
    /// The status byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            FailureKind::BadName => 0x10,
            FailureKind::Exists => 0x11,
            FailureKind::Checksum => 0x12,
            FailureKind::Size => 0x13,
            FailureKind::Protocol => 0x14,
            FailureKind::Io => 0x15,
            FailureKind::TooLarge => 0x16,
            FailureKind::Unknown(c) => c,
        }
    }

    /// The kind for a status byte.
    pub fn from_code(code: u8) -> Self {
        match code {
            0x10 => FailureKind::BadName,
            0x11 => FailureKind::Exists,
            0x12 => FailureKind::Checksum,
            0x13 => FailureKind::Size,
            0x14 => FailureKind::Protocol,
            0x15 => FailureKind::Io,
            0x16 => FailureKind::TooLarge,
            c => FailureKind::Unknown(c),
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FailureKind::BadName => "bad file name",
            FailureKind::Exists => "file exists",
            FailureKind::Checksum => "checksum mismatch",
            FailureKind::Size => "size mismatch",
            FailureKind::Protocol => "protocol error",
            FailureKind::Io => "receiver I/O error",
            FailureKind::TooLarge => "file too large",
            FailureKind::Unknown(_) => "unknown error",
        };
        f.write_str(s)
    }
}

/// What a transfer is doing, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sender: computing the SHA-256 that goes into the header.
    Hashing,
    /// Bytes are moving.
    Transferring,
    /// The file is stored and verified.
    Done,
}

/// A progress report about one file.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// Peer address.
    pub peer: SocketAddr,
    /// Index of the file in the session (0-based) and number of files.
    pub index: usize,
    pub count: usize,
    /// File name as on the wire.
    pub name: &'a str,
    /// Bytes done in this phase, and the file size.
    pub done: u64,
    pub size: u64,
    pub phase: Phase,
}

/// Progress callback; called once per chunk (at most every [`MAX_CHUNK`] bytes).
pub type ProgressFn = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

/// A file that arrived (receiver) or landed (sender).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    pub name: String,
    /// Where it was stored (receiver side) or read from (sender side).
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex SHA-256, as verified by the receiver.
    pub sha256: String,
}

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Deadline for the TCP connect.
    pub connect_timeout: Duration,
    /// Deadline for each socket read or write.
    pub idle_timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Receiver settings.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// Directory the files go into.
    pub dir: PathBuf,
    /// Replace existing files (default: refuse them).
    pub overwrite: bool,
    /// Deadline for each socket read or write.
    pub idle_timeout: Duration,
    /// Largest file accepted, if limited.
    pub max_file_size: Option<u64>,
    /// Sessions served at once by [`serve`] (a session takes a slot only after its hello).
    pub max_connections: usize,
    /// Deadline for the 16-byte hello after a connection is accepted; a connection that has
    /// not sent it by then is closed without ever taking a session slot (default 10 s).
    pub hello_timeout: Duration,
    /// Lowest average data rate of a file, in bytes per second, measured from its acceptance
    /// after `rate_grace`; a slower sender is cut off so it cannot hold a slot by dripping
    /// bytes (default 1024; `None` = no minimum).
    pub min_rate: Option<u64>,
    /// Whole-session deadline, from the hello to the last file (default none).
    pub session_timeout: Option<Duration>,
    /// How long a file may go slower than `min_rate` before the rate counts (default 10 s).
    pub rate_grace: Duration,
}

/// Most accepted connections waiting for their hello at once; when more arrive, the oldest
/// waiting one is closed (a real sender sends its hello at once, idle connections wait).
pub const MAX_PENDING_HELLOS: usize = 256;

impl ReceiveOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            overwrite: false,
            idle_timeout: Duration::from_secs(30),
            max_file_size: None,
            max_connections: 16,
            hello_timeout: Duration::from_secs(10),
            min_rate: Some(1024),
            session_timeout: None,
            rate_grace: Duration::from_secs(10),
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Runs `fut` with the idle deadline.
async fn deadline<T>(
    idle: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(idle, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::Protocol(
            format!("connection closed by the peer while {}", what()),
        )),
        Ok(Err(e)) => Err(io(what())(e)),
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: idle,
        }),
    }
}

/// Checks a file name from the wire: one plain component, no `/`, `\`, NUL, `.` or `..`.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the file name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "the file name is {} bytes long, the limit is {MAX_NAME}",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err(format!("the file name {name:?} contains a NUL byte"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(format!(
            "the file name {name:?} has a path component (`/` or `\\`); only plain names are accepted"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("the file name {name:?} is not a file name"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "the file name {name:?} contains control characters"
        ));
    }
    let mut comps = Path::new(name).components();
    match (comps.next(), comps.next()) {
        (Some(Component::Normal(_)), None) => Ok(()),
        _ => Err(format!("the file name {name:?} is not a plain file name")),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn hello(count: u32) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&count.to_be_bytes());
    h
}

/// Encodes a file header frame (length prefix included).
pub fn encode_header(name: &str, size: u64, sha256: &[u8; 32]) -> Vec<u8> {
    let len = HEADER_FIXED + name.len();
    let mut v = Vec::with_capacity(4 + len);
    v.extend_from_slice(&(len as u32).to_be_bytes());
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(sha256);
    v.extend_from_slice(&(name.len() as u16).to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

fn encode_reply(status: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + body.len());
    v.extend_from_slice(&(1 + body.len() as u32).to_be_bytes());
    v.push(status);
    v.extend_from_slice(body);
    v
}

fn encode_error(kind: FailureKind, message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    encode_reply(kind.code(), &message.as_bytes()[..end])
}

/// A reply from the receiver.
enum Reply {
    Accept,
    Done([u8; 32]),
    Failed(FailureKind, String),
}

async fn read_reply(stream: &mut TcpStream, idle: Duration, peer: SocketAddr) -> Result<Reply> {
    let len = deadline(
        idle,
        || format!("waiting for the reply of {peer}"),
        stream.read_u32(),
    )
    .await? as usize;
    if len == 0 || len > 1 + MAX_MESSAGE.max(32) {
        return Err(Error::Protocol(format!(
            "{peer} sent a reply of {len} bytes"
        )));
    }
    let mut body = vec![0u8; len];
    deadline(
        idle,
        || format!("reading the reply of {peer}"),
        stream.read_exact(&mut body),
    )
    .await?;
    match body[0] {
        REPLY_ACCEPT if len == 1 => Ok(Reply::Accept),
        REPLY_DONE if len == 33 => {
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&body[1..]);
            Ok(Reply::Done(sha))
        }
        REPLY_ACCEPT | REPLY_DONE => Err(Error::Protocol(format!(
            "{peer} sent a malformed reply (status {}, {len} bytes)",
            body[0]
        ))),
        code => Ok(Reply::Failed(
            FailureKind::from_code(code),
            String::from_utf8_lossy(&body[1..]).into_owned(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Sender

struct Outgoing {
    path: PathBuf,
    name: String,
}

fn plan(files: &[PathBuf]) -> Result<Vec<Outgoing>> {
    if files.len() > MAX_FILES as usize {
        return Err(Error::BadFile {
            path: PathBuf::new(),
            reason: format!(
                "{} files in one send, the limit is {MAX_FILES}",
                files.len()
            ),
        });
    }
    let mut out: Vec<Outgoing> = Vec::with_capacity(files.len());
    for path in files {
        let bad = |reason: String| Error::BadFile {
            path: path.clone(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("the file name is not valid UTF-8".into()))?
            .to_owned();
        validate_name(&name).map_err(bad)?;
        if out.iter().any(|o| o.name == name) {
            return Err(bad(format!(
                "another file named {name:?} is in this send; names must be unique"
            )));
        }
        out.push(Outgoing {
            path: path.clone(),
            name,
        });
    }
    Ok(out)
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// SHA-256 of a whole file, read in 1 MiB blocks (page-cache reads are much faster than the
/// hashing, so overlapping them would gain little).
fn hash_file(path: &Path, mut on_progress: impl FnMut(u64)) -> std::io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; MAX_CHUNK];
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        on_progress(total);
    }
    Ok((hasher.finalize().into(), total))
}

/// What became of one file of [`send_each`].
#[derive(Debug)]
pub enum SendOutcome {
    /// It landed; the receiver verified it.
    Sent(FileReport),
    /// It failed: the receiver refused it ([`Error::Rejected`]) or the session broke.
    Failed(Error),
    /// It was not attempted: an earlier failure (not a refusal) ended the send.
    NotSent,
}

/// Sends `files` to the receiver at `addr` and reports every file's outcome, in order.
///
/// The rule: a file the receiver **refuses** (exists, bad name, too large, checksum) does not
/// stop the others: the receiver ends a session after a refusal, so the remaining files go in
/// a new session. Any other failure (cannot connect, timeout, protocol error, a dropped
/// connection) stops the send: that file is `Failed` and every later one `NotSent`. Files that
/// cannot be sent at all (missing, not a regular file, duplicate name) are an error before
/// anything is sent.
pub async fn send_each(
    addr: SocketAddr,
    files: &[PathBuf],
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> Result<Vec<(PathBuf, SendOutcome)>> {
    plan(files)?;
    let mut out: Vec<(PathBuf, SendOutcome)> = Vec::with_capacity(files.len());
    let mut rest: &[PathBuf] = files;
    while !rest.is_empty() {
        let (landed, err) = match send_files_inner(addr, rest, options, progress.clone()).await {
            Ok(r) => (r, None),
            Err((r, e)) => (r, Some(e)),
        };
        let n = landed.len();
        for (path, report) in rest.iter().zip(landed) {
            out.push((path.clone(), SendOutcome::Sent(report)));
        }
        rest = &rest[n..];
        let Some(e) = err else { break };
        let Some((failed, after)) = rest.split_first() else {
            break;
        };
        let refused = matches!(e, Error::Rejected { .. });
        out.push((failed.clone(), SendOutcome::Failed(e)));
        rest = after;
        if !refused {
            out.extend(rest.iter().map(|p| (p.clone(), SendOutcome::NotSent)));
            break;
        }
    }
    Ok(out)
}

/// Sends `files` to the receiver at `addr`, one session; returns what landed, as verified by the
/// receiver. Stops at the first file the receiver refuses ([`Error::Rejected`]); see
/// [`send_each`] for every file's outcome.
pub async fn send_files(
    addr: SocketAddr,
    files: &[PathBuf],
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> Result<Vec<FileReport>> {
    send_files_inner(addr, files, options, progress)
        .await
        .map_err(|(_, e)| e)
}

/// [`send_files`], returning on failure what landed before it.
async fn send_files_inner(
    addr: SocketAddr,
    files: &[PathBuf],
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> std::result::Result<Vec<FileReport>, (Vec<FileReport>, Error)> {
    let plan = plan(files).map_err(|e| (Vec::new(), e))?;
    let count = plan.len();
    let mut reports = Vec::with_capacity(count);
    let start = async {
        let mut stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to {addr}"),
                after: options.connect_timeout,
            })?
            .map_err(|source| Error::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let idle = options.idle_timeout;
        deadline(
            idle,
            || format!("sending the hello to {addr}"),
            stream.write_all(&hello(count as u32)),
        )
        .await?;
        Ok::<_, Error>(stream)
    };
    let mut stream = start.await.map_err(|e| (Vec::new(), e))?;
    let idle = options.idle_timeout;
    for (index, out) in plan.into_iter().enumerate() {
        match send_one(&mut stream, addr, index, count, out, idle, progress.clone()).await {
            Ok(report) => reports.push(report),
            Err(e) => return Err((reports, e)),
        }
    }
    let _ = tokio::time::timeout(idle, stream.shutdown()).await;
    Ok(reports)
}

async fn send_one(
    stream: &mut TcpStream,
    peer: SocketAddr,
    index: usize,
    count: usize,
    out: Outgoing,
    idle: Duration,
    progress: Option<ProgressFn>,
) -> Result<FileReport> {
    let Outgoing { path, name } = out;
    let size_hint = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    // 1. The SHA-256 for the header (a blocking read of the whole file).
    let (sha, size) = {
        let p2 = path.clone();
        let name = name.clone();
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            hash_file(&p2, |done| {
                if let Some(p) = &progress {
                    p(&Progress {
                        peer,
                        index,
                        count,
                        name: &name,
                        done,
                        size: size_hint,
                        phase: Phase::Hashing,
                    });
                }
            })
        })
        .await
        .map_err(|e| Error::Protocol(format!("hashing task failed: {e}")))?
        .map_err(io(format!("reading {}", path.display())))?
    };

    // 2. Header, then wait for ACCEPT (or a refusal).
    deadline(
        idle,
        || format!("sending the header of {name:?} to {peer}"),
        stream.write_all(&encode_header(&name, size, &sha)),
    )
    .await?;
    match read_reply(stream, idle, peer).await? {
        Reply::Accept => {}
        Reply::Failed(kind, message) => {
            return Err(Error::Rejected {
                file: name,
                kind,
                message,
            });
        }
        Reply::Done(_) => {
            return Err(Error::Protocol(format!(
                "{peer} answered the header of {name:?} with DONE"
            )));
        }
    }

    // 3. Data: a blocking reader fills buffers, this task writes them as frames.
    let (full_tx, mut full_rx) = mpsc::channel::<std::io::Result<(Vec<u8>, usize)>>(BUFFERS);
    let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = free_tx.try_send(vec![0u8; MAX_CHUNK]);
    }
    let reader = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = full_tx.blocking_send(Err(e));
                    return;
                }
            };
            let mut left = size;
            while left > 0 {
                let Some(mut buf) = free_rx.blocking_recv() else {
                    return;
                };
                let want = (left.min(MAX_CHUNK as u64)) as usize;
                let msg = match read_full(&mut file, &mut buf[..want]) {
                    Ok(n) if n < want => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was being sent",
                    )),
                    Ok(n) => {
                        left -= n as u64;
                        Ok((buf, n))
                    }
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                if full_tx.blocking_send(msg).is_err() || failed {
                    return;
                }
            }
        })
    };
    let mut done = 0u64;
    while done < size {
        let Some(msg) = full_rx.recv().await else {
            return Err(Error::Protocol("the file reader stopped early".into()));
        };
        let (buf, n) = msg.map_err(io(format!("reading {}", path.display())))?;
        let frame_len = (n as u32).to_be_bytes();
        let write = async {
            stream.write_all(&frame_len).await?;
            stream.write_all(&buf[..n]).await
        };
        if let Err(err) = deadline(idle, || format!("sending {name:?} to {peer}"), write).await {
            // The receiver may have refused mid-stream (size, disk full): prefer its words.
            if !matches!(err, Error::Timeout { .. })
                && let Ok(Reply::Failed(kind, message)) = read_reply(stream, DRAIN_TIME, peer).await
            {
                return Err(Error::Rejected {
                    file: name,
                    kind,
                    message,
                });
            }
            return Err(err);
        }
        done += n as u64;
        let _ = free_tx.send(buf).await;
        if let Some(p) = &progress {
            p(&Progress {
                peer,
                index,
                count,
                name: &name,
                done,
                size,
                phase: Phase::Transferring,
            });
        }
    }
    drop(full_rx);
    drop(free_tx);
    let _ = reader.await;
    deadline(
        idle,
        || format!("ending {name:?} to {peer}"),
        stream.write_all(&0u32.to_be_bytes()),
    )
    .await?;
    let _ = stream.flush().await;

    // 4. The final ack: the receiver fsyncs before answering, give it time for large files.
    let ack_wait = idle + Duration::from_secs(size / (32 * 1024 * 1024));
    match read_reply(stream, ack_wait, peer).await? {
        Reply::Done(theirs) if theirs == sha => {}
        Reply::Done(theirs) => {
            return Err(Error::Protocol(format!(
                "{peer} stored {name:?} with SHA-256 {} but we sent {}",
                hex::encode(theirs),
                hex::encode(sha)
            )));
        }
        Reply::Failed(kind, message) => {
            return Err(Error::Rejected {
                file: name,
                kind,
                message,
            });
        }
        Reply::Accept => {
            return Err(Error::Protocol(format!(
                "{peer} answered the end of {name:?} with ACCEPT"
            )));
        }
    }
    if let Some(p) = &progress {
        p(&Progress {
            peer,
            index,
            count,
            name: &name,
            done: size,
            size,
            phase: Phase::Done,
        });
    }
    Ok(FileReport {
        name,
        path,
        size,
        sha256: hex::encode(sha),
    })
}

// ---------------------------------------------------------------------------------------------
// Receiver

/// What [`serve`] reports about each session.
#[derive(Debug)]
pub enum SessionEvent {
    /// A file was stored.
    Received { peer: SocketAddr, file: FileReport },
    /// A session ended in an error (already answered to the sender when possible).
    Failed { peer: SocketAddr, error: Error },
}

/// Session callback for [`serve`].
pub type SessionFn = Arc<dyn Fn(SessionEvent) + Send + Sync>;

/// Binds the receiver's listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Checks that the target directory exists and is a directory.
pub fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::BadFile {
            path: dir.to_owned(),
            reason: "not a directory".into(),
        }),
        Err(e) => Err(Error::BadFile {
            path: dir.to_owned(),
            reason: format!("cannot use it as the target directory: {e}"),
        }),
    }
}

/// Accepts sessions until the future is dropped, at most `max_connections` at once; each
/// stored file and each failed session is reported through `events`.
pub async fn serve(
    listener: TcpListener,
    options: ReceiveOptions,
    progress: Option<ProgressFn>,
    events: SessionFn,
) -> Result<()> {
    check_dir(&options.dir)?;
    let options = Arc::new(options);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    // connections still waiting for their hello, oldest first, with a handle to close them
    let pending: Arc<
        std::sync::Mutex<std::collections::VecDeque<(u64, tokio::task::AbortHandle)>>,
    > = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let options = options.clone();
        let progress = progress.clone();
        let events = events.clone();
        let slots = slots.clone();
        let id = next_id;
        next_id += 1;
        let waiting = pending.clone();
        let task = tokio::spawn(async move {
            let mut stream = stream;
            // 1. the hello, without a slot and under its own short deadline
            let hello = read_hello(&mut stream, peer, options.hello_timeout).await;
            if let Ok(mut w) = waiting.lock() {
                w.retain(|(i, _)| *i != id);
            }
            let count = match hello {
                Ok(c) => c,
                Err(error) => {
                    tell_and_close(&mut stream, &error, options.idle_timeout).await;
                    events(SessionEvent::Failed { peer, error });
                    return;
                }
            };
            // 2. a slot, waited for no longer than the idle deadline
            let permit =
                match tokio::time::timeout(options.idle_timeout, slots.acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let error = refuse(
                            FailureKind::Io,
                            format!(
                                "the receiver is busy ({} sessions); try again later",
                                options.max_connections
                            ),
                        );
                        tell_and_close(&mut stream, &error, options.idle_timeout).await;
                        events(SessionEvent::Failed { peer, error });
                        return;
                    }
                };
            let _permit = permit;
            let ev = events.clone();
            let on_file = move |file: FileReport| ev(SessionEvent::Received { peer, file });
            if let Err(error) =
                receive_after_hello(stream, count, &options, progress, on_file).await
            {
                events(SessionEvent::Failed { peer, error });
            }
        });
        if let Ok(mut w) = pending.lock() {
            if !task.is_finished() {
                w.push_back((id, task.abort_handle()));
            }
            while w.len() > MAX_PENDING_HELLOS {
                if let Some((_, oldest)) = w.pop_front() {
                    oldest.abort();
                }
            }
        }
    }
}

/// Reads and checks the hello; returns the announced file count.
async fn read_hello(stream: &mut TcpStream, peer: SocketAddr, within: Duration) -> Result<u32> {
    let mut hello = [0u8; HELLO_LEN];
    deadline(
        within,
        || format!("reading the hello of {peer}"),
        stream.read_exact(&mut hello),
    )
    .await?;
    if hello[..8] != MAGIC {
        return Err(refuse(
            FailureKind::Protocol,
            "not an opskit transfer (bad magic); use `opskit net send`".into(),
        ));
    }
    let version = u16::from_be_bytes([hello[8], hello[9]]);
    if version != VERSION {
        return Err(refuse(
            FailureKind::Protocol,
            format!("protocol version {version} is not supported (this receiver speaks {VERSION})"),
        ));
    }
    let count = u32::from_be_bytes([hello[12], hello[13], hello[14], hello[15]]);
    if count > MAX_FILES {
        return Err(refuse(
            FailureKind::Protocol,
            format!("{count} files in one session, the limit is {MAX_FILES}"),
        ));
    }
    Ok(count)
}

/// Accepts one connection and receives its session (`opskit net receive --once`).
pub async fn receive_once(
    listener: &TcpListener,
    options: &ReceiveOptions,
    progress: Option<ProgressFn>,
) -> Result<Vec<FileReport>> {
    check_dir(&options.dir)?;
    // Only a valid hello starts the one session: a connection that sends nothing (a port scan,
    // a health check), junk or too slowly is answered, closed, and the wait goes on.
    let (stream, count) = loop {
        let (mut stream, peer) = listener
            .accept()
            .await
            .map_err(io("accepting a connection"))?;
        match read_hello(&mut stream, peer, options.hello_timeout).await {
            Ok(count) => break (stream, count),
            Err(e) => {
                tracing::info!(%peer, error = %e, "not an opskit sender; still waiting");
                tell_and_close(&mut stream, &e, options.idle_timeout).await;
            }
        }
    };
    let mut files = Vec::new();
    receive_after_hello(stream, count, options, progress, |f| files.push(f)).await?;
    Ok(files)
}

/// Tells the peer why the session ends (when the error is one to tell) and closes.
async fn tell_and_close(stream: &mut TcpStream, err: &Error, idle: Duration) {
    let (kind, message) = match err {
        Error::Transfer { kind, message } => (*kind, message.clone()),
        Error::Protocol(m) => (FailureKind::Protocol, m.clone()),
        _ => return,
    };
    let reply = encode_error(kind, &message);
    let _ = tokio::time::timeout(idle.min(DRAIN_TIME), async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
}

/// A failure to report to the sender and to return.
fn refuse(kind: FailureKind, message: String) -> Error {
    Error::Transfer { kind, message }
}

/// Receives one session from an accepted connection. Every stored file is passed to `on_file`
/// as soon as it is renamed into place. On error the sender is told why (when the connection
/// still works) and the error is returned.
pub async fn receive_session(
    mut stream: TcpStream,
    options: &ReceiveOptions,
    progress: Option<ProgressFn>,
    on_file: impl FnMut(FileReport),
) -> Result<()> {
    let peer = stream.peer_addr().map_err(io("reading the peer address"))?;
    let count = match read_hello(&mut stream, peer, options.hello_timeout).await {
        Ok(c) => c,
        Err(e) => {
            tell_and_close(&mut stream, &e, options.idle_timeout).await;
            return Err(e);
        }
    };
    receive_after_hello(stream, count, options, progress, on_file).await
}

/// [`receive_session`] once the hello (announcing `count` files) was read.
async fn receive_after_hello(
    mut stream: TcpStream,
    count: u32,
    options: &ReceiveOptions,
    progress: Option<ProgressFn>,
    mut on_file: impl FnMut(FileReport),
) -> Result<()> {
    let peer = stream.peer_addr().map_err(io("reading the peer address"))?;
    let _ = stream.set_nodelay(true);
    let result = match options.session_timeout {
        None => session(&mut stream, peer, count, options, progress, &mut on_file).await,
        Some(limit) => match tokio::time::timeout(
            limit,
            session(&mut stream, peer, count, options, progress, &mut on_file),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(refuse(
                FailureKind::Protocol,
                format!("the session took longer than the receiver's {limit:?} session limit"),
            )),
        },
    };
    if let Err(err) = &result {
        let (kind, message) = match err {
            Error::Transfer { kind, message } => (*kind, message.clone()),
            Error::Protocol(m) => (FailureKind::Protocol, m.clone()),
            // Timeouts and dropped connections: nobody is left to tell.
            Error::Timeout { .. } => return result,
            Error::Io { context, source } => {
                (FailureKind::Io, format!("receiver: {context}: {source}"))
            }
            other => (FailureKind::Io, other.to_string()),
        };
        let reply = encode_error(kind, &message);
        let _ = tokio::time::timeout(options.idle_timeout, async {
            stream.write_all(&reply).await?;
            stream.shutdown().await
        })
        .await;
        // Read what the sender still has in flight for a moment: closing with unread data
        // makes the kernel send a reset, which can destroy the reply before the sender reads it.
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            let mut sink = vec![0u8; 64 * 1024];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    result
}

async fn session(
    stream: &mut TcpStream,
    peer: SocketAddr,
    count: u32,
    options: &ReceiveOptions,
    progress: Option<ProgressFn>,
    on_file: &mut impl FnMut(FileReport),
) -> Result<()> {
    // Chunk buffers, allocated once per session and reused for every file.
    let mut pool: Vec<Vec<u8>> = (0..BUFFERS).map(|_| vec![0u8; MAX_CHUNK]).collect();
    for index in 0..count as usize {
        let file = receive_file(
            stream,
            peer,
            options,
            index,
            count as usize,
            progress.as_ref(),
            &mut pool,
        )
        .await?;
        on_file(file);
    }
    Ok(())
}

struct Header {
    name: String,
    size: u64,
    sha256: [u8; 32],
}

async fn read_header(stream: &mut TcpStream, peer: SocketAddr, idle: Duration) -> Result<Header> {
    let len = deadline(
        idle,
        || format!("reading a file header from {peer}"),
        stream.read_u32(),
    )
    .await? as usize;
    if !(HEADER_FIXED..=HEADER_FIXED + MAX_NAME).contains(&len) {
        return Err(refuse(
            FailureKind::Protocol,
            format!(
                "a file header of {len} bytes (valid: {HEADER_FIXED} to {})",
                HEADER_FIXED + MAX_NAME
            ),
        ));
    }
    let mut buf = vec![0u8; len];
    deadline(
        idle,
        || format!("reading a file header from {peer}"),
        stream.read_exact(&mut buf),
    )
    .await?;
    let mut size = [0u8; 8];
    size.copy_from_slice(&buf[..8]);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&buf[8..40]);
    let name_len = u16::from_be_bytes([buf[40], buf[41]]) as usize;
    if name_len != len - HEADER_FIXED {
        return Err(refuse(
            FailureKind::Protocol,
            format!(
                "the header says the name has {name_len} bytes but carries {}",
                len - HEADER_FIXED
            ),
        ));
    }
    let name = std::str::from_utf8(&buf[HEADER_FIXED..])
        .map_err(|_| {
            refuse(
                FailureKind::BadName,
                "the file name is not valid UTF-8".into(),
            )
        })?
        .to_owned();
    Ok(Header {
        name,
        size: u64::from_be_bytes(size),
        sha256,
    })
}

/// True when every byte is zero (written as a hole rather than data).
fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The blocking side of a receive: hashes each chunk and writes it (all-zero chunks become
/// holes), then sets the final length and fsyncs.
fn write_worker(
    mut file: File,
    size: u64,
    mut full_rx: mpsc::Receiver<(Vec<u8>, usize)>,
    free_tx: mpsc::Sender<Vec<u8>>,
) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut pending_hole = false;
    while let Some((buf, n)) = full_rx.blocking_recv() {
        let data = &buf[..n];
        hasher.update(data);
        if is_zero(data) {
            file.seek(SeekFrom::Current(n as i64))?;
            pending_hole = true;
        } else {
            file.write_all(data)?;
            pending_hole = false;
        }
        written += n as u64;
        // The async side may be gone (error); then the buffer is simply dropped.
        let _ = free_tx.blocking_send(buf);
    }
    if written != size {
        return Err(std::io::Error::other(format!(
            "the data ended after {written} of {size} bytes"
        )));
    }
    if pending_hole || written == 0 {
        file.set_len(size)?;
    }
    file.sync_all()?;
    Ok(hasher.finalize().into())
}

async fn receive_file(
    stream: &mut TcpStream,
    peer: SocketAddr,
    options: &ReceiveOptions,
    index: usize,
    count: usize,
    progress: Option<&ProgressFn>,
    pool: &mut Vec<Vec<u8>>,
) -> Result<FileReport> {
    let idle = options.idle_timeout;
    let Header { name, size, sha256 } = read_header(stream, peer, idle).await?;
    validate_name(&name).map_err(|m| refuse(FailureKind::BadName, m))?;
    if let Some(max) = options.max_file_size
        && size > max
    {
        return Err(refuse(
            FailureKind::TooLarge,
            format!("{name:?} is {size} bytes, this receiver accepts at most {max}"),
        ));
    }
    let target = options.dir.join(&name);
    if !options.overwrite && std::fs::symlink_metadata(&target).is_ok() {
        return Err(refuse(
            FailureKind::Exists,
            format!(
                "{name:?} already exists on the receiver (start it with --overwrite to replace files)"
            ),
        ));
    }
    let temp = tempfile::Builder::new()
        .prefix(".opskit-recv-")
        .suffix(".part")
        .tempfile_in(&options.dir)
        .map_err(|e| {
            refuse(
                FailureKind::Io,
                format!("cannot create a temporary file in the receiver's directory: {e}"),
            )
        })?;
    let file = temp.as_file().try_clone().map_err(|e| {
        refuse(
            FailureKind::Io,
            format!("cannot open the temporary file: {e}"),
        )
    })?;
    deadline(
        idle,
        || format!("accepting {name:?} from {peer}"),
        stream.write_all(&encode_reply(REPLY_ACCEPT, &[])),
    )
    .await?;

    let (full_tx, full_rx) = mpsc::channel::<(Vec<u8>, usize)>(BUFFERS);
    let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    for buf in pool.drain(..) {
        let _ = free_tx.try_send(buf);
    }
    let worker = tokio::task::spawn_blocking(move || write_worker(file, size, full_rx, free_tx));

    // Read frames while the worker hashes and writes the previous ones. Each read has the idle
    // deadline and, past the grace period, the one by which the file's average rate would fall
    // under the minimum: a peer dripping bytes cannot hold a session slot.
    let accepted = tokio::time::Instant::now();
    let read_result: Result<()> = async {
        let mut done = 0u64;
        let within = |done: u64| -> Duration {
            match options.min_rate {
                Some(rate) if rate > 0 => {
                    let due = accepted
                        + options.rate_grace
                        + Duration::from_secs_f64(done as f64 / rate as f64);
                    idle.min(due.saturating_duration_since(tokio::time::Instant::now()))
                }
                _ => idle,
            }
        };
        let slow = |e: Error| -> Error {
            match (e, options.min_rate) {
                (Error::Timeout { .. }, Some(rate)) if accepted.elapsed() >= options.rate_grace => refuse(
                    FailureKind::Protocol,
                    format!(
                        "{name:?} arrives slower than the receiver's minimum of {rate} bytes/s; the session was closed"
                    ),
                ),
                (e, _) => e,
            }
        };
        loop {
            let len = deadline(
                within(done),
                || format!("reading {name:?} from {peer}"),
                stream.read_u32(),
            )
            .await
            .map_err(slow)? as usize;
            if len == 0 {
                if done != size {
                    return Err(refuse(
                        FailureKind::Size,
                        format!("{name:?} ended after {done} bytes, the header announced {size}"),
                    ));
                }
                return Ok(());
            }
            if len > MAX_CHUNK {
                return Err(refuse(
                    FailureKind::Protocol,
                    format!("a data chunk of {len} bytes, the limit is {MAX_CHUNK}"),
                ));
            }
            if done + len as u64 > size {
                return Err(refuse(
                    FailureKind::Size,
                    format!("{name:?} has more data than the {size} bytes its header announced"),
                ));
            }
            let Some(mut buf) = free_rx.recv().await else {
                // The worker stopped: its error is reported below.
                return Ok(());
            };
            deadline(
                within(done),
                || format!("reading {name:?} from {peer}"),
                stream.read_exact(&mut buf[..len]),
            )
            .await
            .map_err(slow)?;
            if full_tx.send((buf, len)).await.is_err() {
                return Ok(());
            }
            done += len as u64;
            if let Some(p) = progress {
                p(&Progress {
                    peer,
                    index,
                    count,
                    name: &name,
                    done,
                    size,
                    phase: Phase::Transferring,
                });
            }
        }
    }
    .await;
    drop(full_tx);
    let worker_result = worker
        .await
        .map_err(|e| refuse(FailureKind::Io, format!("the writer task failed: {e}")))?;
    // Take the buffers back for the next file.
    while let Ok(buf) = free_rx.try_recv() {
        pool.push(buf);
    }
    read_result?;
    let actual = worker_result.map_err(|e| {
        refuse(
            FailureKind::Io,
            format!("the receiver could not write {name:?}: {e}"),
        )
    })?;
    if actual != sha256 {
        return Err(refuse(
            FailureKind::Checksum,
            format!(
                "{name:?}: SHA-256 of the received data is {} but the header says {}; the file was discarded",
                hex::encode(actual),
                hex::encode(sha256)
            ),
        ));
    }
    let persisted = if options.overwrite {
        temp.persist(&target).map(|_| ())
    } else {
        temp.persist_noclobber(&target).map(|_| ())
    };
    if let Err(e) = persisted {
        // `e.file` is the temporary file; dropping it removes it.
        let kind = if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            FailureKind::Exists
        } else {
            FailureKind::Io
        };
        return Err(refuse(
            kind,
            format!("cannot store {name:?} on the receiver: {}", e.error),
        ));
    }
    if let Ok(dir) = File::open(&options.dir) {
        let _ = dir.sync_all();
    }
    deadline(
        idle,
        || format!("acknowledging {name:?} to {peer}"),
        stream.write_all(&encode_reply(REPLY_DONE, &actual)),
    )
    .await?;
    if let Some(p) = progress {
        p(&Progress {
            peer,
            index,
            count,
            name: &name,
            done: size,
            size,
            phase: Phase::Done,
        });
    }
    Ok(FileReport {
        name,
        path: target,
        size,
        sha256: hex::encode(actual),
    })
}
