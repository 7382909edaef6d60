//! Framed, checksummed, resumable file transfer over TCP: `opskit net send` / `opskit net
//! receive`.
//!
//! The wire format (version 2) is documented byte by byte in `docs/net-transfer.md`. In short:
//!
//! ```text
//! sender → receiver   hello    "OPSKITXF" | version u16 = 2 | reserved u16 | file count u32
//! then per file:
//! sender → receiver   header   len u32 | size u64 | algorithm u8 | flags u8 | name_len u16 | name
//! receiver → sender   reply    len u32 | 0x00 ACCEPT | have u64 | algorithm u8 | prefix digest [32]
//!                              (or an error reply, then close)
//! sender → receiver   start    from u64      (0, or `have` when the prefix digest matched)
//! sender → receiver   chunks   len u32 | bytes   (1 ..= 1 MiB each, `size - from` bytes in all)
//! sender → receiver   end      len u32 = 0
//! sender → receiver   trailer  digest [32]   (of the whole file, with the header's algorithm)
//! receiver → sender   reply    len u32 | 0x01 DONE | algorithm u8 | digest [32]  (or an error)
//! ```
//!
//! All integers are big-endian. The digest travels after the data, so both sides hash while the
//! bytes move (the sender on a thread of its own, overlapped with sending; the receiver on the
//! thread that writes the file). The receiver writes into a temporary file in the target
//! directory, fsyncs it and renames it into place only when both the size and the digest match;
//! any failure removes the temporary file, except that a `--resume` transfer cut in the middle
//! keeps its partial file (under a hidden name, never the final one) for the next attempt.
//! Every socket read and write has a deadline.

mod checksum;

pub use checksum::{Checksum, Hasher};

use std::fmt;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::{Error, Result};

/// First bytes of every session.
pub const MAGIC: [u8; 8] = *b"OPSKITXF";
/// Protocol version spoken here.
pub const VERSION: u16 = 2;
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
/// Fixed part of a file header (size, algorithm, flags, name length).
pub const HEADER_FIXED: usize = 8 + 1 + 1 + 2;
/// Header flag: keep a partial file if the transfer is cut, and continue from one.
pub const FLAG_RESUME: u8 = 0x01;
/// Prefix of the hidden partial files that `--resume` transfers keep in the target directory.
pub const PARTIAL_PREFIX: &str = ".opskit-part-";

/// Reply status: the header is accepted, send the data; followed by what the receiver already
/// has (`have` u64, algorithm u8, digest of those `have` bytes [32]).
pub const REPLY_ACCEPT: u8 = 0x00;
/// Reply status: the file is stored; followed by the algorithm and the digest the receiver
/// computed.
pub const REPLY_DONE: u8 = 0x01;
/// Body length of an ACCEPT reply.
const ACCEPT_BODY: usize = 8 + 1 + 32;
/// Body length of a DONE reply.
const DONE_BODY: usize = 1 + 32;
/// Extra time per 32 MiB of file while a peer hashes a prefix or fsyncs before it answers.
const PER_32_MIB: Duration = Duration::from_secs(1);

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
    /// The data's digest is not the one in the trailer (0x12).
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
    /// Sender (`--resume`): hashing its file's prefix to compare with what the receiver has.
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
    /// The checksum algorithm of `digest`.
    pub algorithm: Checksum,
    /// Lowercase hex digest of the whole file, as verified by the receiver.
    pub digest: String,
    /// Bytes of the file that went over the wire in this session (`size - resumed_from`).
    pub sent: u64,
    /// Where the data of this session started: 0, or the length of the partial file the
    /// receiver already had (`--resume`).
    pub resumed_from: u64,
}

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Deadline for the TCP connect.
    pub connect_timeout: Duration,
    /// Deadline for each socket read or write.
    pub idle_timeout: Duration,
    /// The checksum the receiver verifies (default BLAKE3).
    pub checksum: Checksum,
    /// Ask the receiver to keep a partial file if the transfer is cut, and continue from the
    /// partial file it has (after comparing the digests of that prefix).
    pub resume: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            checksum: Checksum::Blake3,
            resume: false,
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

/// Encodes a file header frame (length prefix included); `flags` is 0 or [`FLAG_RESUME`].
pub fn encode_header(name: &str, size: u64, checksum: Checksum, flags: u8) -> Vec<u8> {
    let len = HEADER_FIXED + name.len();
    let mut v = Vec::with_capacity(4 + len);
    v.extend_from_slice(&(len as u32).to_be_bytes());
    v.extend_from_slice(&size.to_be_bytes());
    v.push(checksum.code());
    v.push(flags);
    v.extend_from_slice(&(name.len() as u16).to_be_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

fn encode_accept(have: u64, checksum: Checksum, prefix: &[u8; 32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ACCEPT_BODY);
    body.extend_from_slice(&have.to_be_bytes());
    body.push(checksum.code());
    body.extend_from_slice(prefix);
    encode_reply(REPLY_ACCEPT, &body)
}

fn encode_done(checksum: Checksum, digest: &[u8; 32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(DONE_BODY);
    body.push(checksum.code());
    body.extend_from_slice(digest);
    encode_reply(REPLY_DONE, &body)
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
    /// Send the data; the receiver has `have` bytes of a partial file whose digest is `prefix`.
    Accept {
        have: u64,
        checksum: Checksum,
        prefix: [u8; 32],
    },
    Done(Checksum, [u8; 32]),
    Failed(FailureKind, String),
}

async fn read_reply(stream: &mut TcpStream, idle: Duration, peer: SocketAddr) -> Result<Reply> {
    let len = deadline(
        idle,
        || format!("waiting for the reply of {peer}"),
        stream.read_u32(),
    )
    .await? as usize;
    if len == 0 || len > 1 + MAX_MESSAGE.max(ACCEPT_BODY) {
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
    let algorithm = |code: u8| {
        Checksum::from_code(code).ok_or_else(|| {
            Error::Protocol(format!(
                "{peer} named checksum algorithm {code}, unknown here"
            ))
        })
    };
    let mut digest = [0u8; 32];
    match body[0] {
        REPLY_ACCEPT if len == 1 + ACCEPT_BODY => {
            let mut have = [0u8; 8];
            have.copy_from_slice(&body[1..9]);
            digest.copy_from_slice(&body[10..]);
            Ok(Reply::Accept {
                have: u64::from_be_bytes(have),
                checksum: algorithm(body[9])?,
                prefix: digest,
            })
        }
        REPLY_DONE if len == 1 + DONE_BODY => {
            digest.copy_from_slice(&body[2..]);
            Ok(Reply::Done(algorithm(body[1])?, digest))
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

/// The hidden name under which a `--resume` transfer of `name` keeps its partial file (fixed
/// length, whatever the name's).
pub fn partial_name(name: &str) -> String {
    let h = blake3::hash(name.as_bytes());
    format!("{PARTIAL_PREFIX}{}", &h.to_hex()[..32])
}

/// Time allowed for an answer that comes after hashing or syncing `bytes` bytes.
fn with_hashing(idle: Duration, bytes: u64) -> Duration {
    idle + PER_32_MIB * u32::try_from(bytes / (32 * 1024 * 1024)).unwrap_or(u32::MAX)
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

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn shrank() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the file shrank while it was being sent",
    )
}

/// Feeds bytes `from..to` of `file` to `hasher`, 1 MiB at a time (`on_progress` gets the
/// offset reached). Fails if the file ends before `to`.
fn hash_range(
    file: &File,
    from: u64,
    to: u64,
    hasher: &mut Hasher,
    mut on_progress: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_CHUNK.min(usize::try_from(to - from).unwrap_or(MAX_CHUNK))];
    let mut at = from;
    while at < to {
        let want = (to - at).min(buf.len() as u64) as usize;
        let n = read_full_at(file, &mut buf[..want], at)?;
        if n < want {
            return Err(shrank());
        }
        hasher.update(&buf[..n]);
        at += n as u64;
        on_progress(at);
    }
    Ok(())
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
        // a protocol refusal (another version, a broken stream) ends the send: a new session
        // would meet the same answer
        let refused = matches!(&e, Error::Rejected { kind, .. } if *kind != FailureKind::Protocol);
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
        match send_one(
            &mut stream,
            addr,
            index,
            count,
            out,
            options,
            progress.clone(),
        )
        .await
        {
            Ok(report) => reports.push(report),
            Err(e) => return Err((reports, e)),
        }
    }
    let _ = tokio::time::timeout(idle, stream.shutdown()).await;
    Ok(reports)
}

/// Reports progress of one file, if anyone listens.
struct Reporter<'a> {
    progress: Option<&'a ProgressFn>,
    peer: SocketAddr,
    index: usize,
    count: usize,
    name: &'a str,
    size: u64,
}

impl Reporter<'_> {
    fn report(&self, done: u64, phase: Phase) {
        if let Some(p) = self.progress {
            p(&Progress {
                peer: self.peer,
                index: self.index,
                count: self.count,
                name: self.name,
                done,
                size: self.size,
                phase,
            });
        }
    }
}

async fn send_one(
    stream: &mut TcpStream,
    peer: SocketAddr,
    index: usize,
    count: usize,
    out: Outgoing,
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> Result<FileReport> {
    let Outgoing { path, name } = out;
    let idle = options.idle_timeout;
    let checksum = options.checksum;
    let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
    let size = file
        .metadata()
        .map_err(io(format!("reading {}", path.display())))?
        .len();
    let file = Arc::new(file);
    let reporter = Reporter {
        progress: progress.as_ref(),
        peer,
        index,
        count,
        name: &name,
        size,
    };

    // 1. Header, then ACCEPT (saying what the receiver already has) or a refusal. With
    //    --resume the receiver hashes its partial file before it answers.
    let flags = if options.resume { FLAG_RESUME } else { 0 };
    deadline(
        idle,
        || format!("sending the header of {name:?} to {peer}"),
        stream.write_all(&encode_header(&name, size, checksum, flags)),
    )
    .await?;
    let (have, theirs) = match read_reply(stream, with_hashing(idle, size), peer).await? {
        Reply::Accept {
            have,
            checksum: c,
            prefix,
        } => {
            if have > 0 && c != checksum {
                return Err(Error::Protocol(format!(
                    "{peer} offered a {c} digest of its partial {name:?}, we asked for {checksum}"
                )));
            }
            (have, prefix)
        }
        Reply::Failed(kind, message) => {
            return Err(Error::Rejected {
                file: name,
                kind,
                message,
            });
        }
        Reply::Done(..) => {
            return Err(Error::Protocol(format!(
                "{peer} answered the header of {name:?} with DONE"
            )));
        }
    };

    // 2. Resume: skip the receiver's prefix only if it is the same as ours.
    let mut hasher = checksum.hasher();
    let mut from = 0;
    if options.resume && have > 0 && have <= size {
        let ours = {
            let file = file.clone();
            let progress = progress.clone();
            let name = name.clone();
            let mut h = checksum.hasher();
            tokio::task::spawn_blocking(move || {
                let r = Reporter {
                    progress: progress.as_ref(),
                    peer,
                    index,
                    count,
                    name: &name,
                    size: have,
                };
                hash_range(&file, 0, have, &mut h, |done| {
                    r.report(done, Phase::Hashing)
                })
                .map(|()| h)
            })
            .await
            .map_err(|e| Error::Protocol(format!("hashing task failed: {e}")))?
        };
        match ours {
            Ok(h) if h.digest() == theirs => {
                from = have;
                hasher = h;
            }
            Ok(_) => tracing::info!(
                file = %name,
                have,
                "the receiver's partial file is not a prefix of ours: sending from the start"
            ),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
    }
    deadline(
        idle,
        || format!("starting {name:?} to {peer}"),
        stream.write_all(&from.to_be_bytes()),
    )
    .await?;

    // 3. The data, hashed on another thread while it goes out; the digest follows it.
    //    (sendfile(2) for the data while this thread hashes was measured and lost: the sender
    //    saved its socket copy but the receiver's copy from cold page-cache pages cost more,
    //    docs/benchmarks.md.)
    let data = send_data(stream, &file, from, size, hasher, idle, &reporter).await;
    let digest = match data {
        Ok(d) => d,
        Err(err) => {
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
    };
    let mut end = Vec::with_capacity(4 + 32);
    end.extend_from_slice(&0u32.to_be_bytes());
    end.extend_from_slice(&digest);
    deadline(
        idle,
        || format!("ending {name:?} to {peer}"),
        stream.write_all(&end),
    )
    .await?;
    let _ = stream.flush().await;

    // 4. The final ack: the receiver fsyncs before answering, give it time for large files.
    match read_reply(stream, with_hashing(idle, size), peer).await? {
        Reply::Done(c, theirs) if c == checksum && theirs == digest => {}
        Reply::Done(c, theirs) => {
            return Err(Error::Protocol(format!(
                "{peer} stored {name:?} with {c} {} but we sent {checksum} {}",
                hex::encode(theirs),
                hex::encode(digest)
            )));
        }
        Reply::Failed(kind, message) => {
            return Err(Error::Rejected {
                file: name,
                kind,
                message,
            });
        }
        Reply::Accept { .. } => {
            return Err(Error::Protocol(format!(
                "{peer} answered the end of {name:?} with ACCEPT"
            )));
        }
    }
    reporter.report(size, Phase::Done);
    Ok(FileReport {
        name,
        path,
        size,
        algorithm: checksum,
        digest: hex::encode(digest),
        sent: size - from,
        resumed_from: from,
    })
}

/// Sends bytes `from..size` of `file` as chunks: a blocking thread reads and hashes each 1 MiB
/// buffer while this task writes the previous one. Returns the digest of the whole file.
async fn send_data(
    stream: &mut TcpStream,
    file: &Arc<File>,
    from: u64,
    size: u64,
    mut hasher: Hasher,
    idle: Duration,
    reporter: &Reporter<'_>,
) -> Result<[u8; 32]> {
    let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(BUFFERS);
    let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = free_tx.try_send(vec![0u8; MAX_CHUNK]);
    }
    let reader = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<[u8; 32]>> {
            let mut at = from;
            while at < size {
                let Some(mut buf) = free_rx.blocking_recv() else {
                    return Ok(None);
                };
                let want = (size - at).min(MAX_CHUNK as u64) as usize;
                let n = read_full_at(&file, &mut buf[..want], at)?;
                if n < want {
                    return Err(shrank());
                }
                hasher.update(&buf[..n]);
                at += n as u64;
                if full_tx.blocking_send((buf, n)).is_err() {
                    return Ok(None);
                }
            }
            Ok(Some(hasher.digest()))
        })
    };
    let name = reporter.name;
    let peer = reporter.peer;
    let mut done = from;
    let mut sent: Result<()> = Ok(());
    while done < size {
        // None: the reader stopped early (its error is reported below)
        let Some((buf, n)) = full_rx.recv().await else {
            break;
        };
        let frame_len = (n as u32).to_be_bytes();
        let write = async {
            stream.write_all(&frame_len).await?;
            stream.write_all(&buf[..n]).await
        };
        if let Err(err) = deadline(idle, || format!("sending {name:?} to {peer}"), write).await {
            sent = Err(err);
            break;
        }
        done += n as u64;
        let _ = free_tx.send(buf).await;
        reporter.report(done, Phase::Transferring);
    }
    drop(full_rx);
    drop(free_tx);
    let digest = reader
        .await
        .map_err(|e| Error::Protocol(format!("the file reader failed: {e}")))?;
    sent?;
    match digest {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(Error::Protocol("the file reader stopped early".into())),
        Err(e) => Err(io(format!("reading {name:?}"))(e)),
    }
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
            format!(
                "protocol version {version} is not supported: this receiver speaks version {VERSION}; \
                 use an opskit of the same release on both sides"
            ),
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
    checksum: Checksum,
    resume: bool,
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
    let checksum = Checksum::from_code(buf[8]).ok_or_else(|| {
        refuse(
            FailureKind::Protocol,
            format!(
                "checksum algorithm {} is not known to this receiver (it knows 1 = blake3, 2 = sha256)",
                buf[8]
            ),
        )
    })?;
    let flags = buf[9];
    if flags & !FLAG_RESUME != 0 {
        return Err(refuse(
            FailureKind::Protocol,
            format!("header flags {flags:#04x} are not known to this receiver"),
        ));
    }
    let name_len = u16::from_be_bytes([buf[10], buf[11]]) as usize;
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
        checksum,
        resume: flags & FLAG_RESUME != 0,
    })
}

/// True when every byte is zero (written as a hole rather than data).
fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// What the write worker ends with: the bytes it wrote and the digest of the whole file (or
/// why it could not finish).
struct Written {
    bytes: u64,
    digest: std::io::Result<[u8; 32]>,
}

/// The blocking side of a receive: hashes each chunk and writes it at `start` onwards (all-zero
/// chunks become holes), then sets the final length and fsyncs. When the data stops short
/// (a cut), the file is left holding exactly the bytes that arrived.
fn write_worker(
    mut file: File,
    start: u64,
    size: u64,
    mut hasher: Hasher,
    mut full_rx: mpsc::Receiver<(Vec<u8>, usize)>,
    free_tx: mpsc::Sender<Vec<u8>>,
) -> Written {
    let mut written = 0u64;
    let mut pending_hole = false;
    let mut run = || -> std::io::Result<[u8; 32]> {
        // whatever a partial file holds past `start` (a longer, older attempt) goes
        file.set_len(start)?;
        file.seek(SeekFrom::Start(start))?;
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
        if start + written != size {
            file.set_len(start + written)?;
            return Err(std::io::Error::other(format!(
                "the data ended after {} of {size} bytes",
                start + written
            )));
        }
        if pending_hole || written == 0 {
            file.set_len(size)?;
        }
        file.sync_all()?;
        Ok(hasher.digest())
    };
    let digest = run();
    Written {
        bytes: written,
        digest,
    }
}

/// Where a file is written until it is verified.
enum Part {
    /// A fresh temporary file, removed when dropped.
    Temp(tempfile::NamedTempFile),
    /// A `--resume` partial file under [`partial_name`], kept when a transfer is cut; `file`
    /// holds its exclusive lock.
    Resumable { path: PathBuf, file: File },
}

impl Part {
    fn file(&self) -> std::io::Result<File> {
        match self {
            Part::Temp(t) => t.as_file().try_clone(),
            Part::Resumable { file, .. } => file.try_clone(),
        }
    }

    /// Renames the verified file to `target` (replacing it only with `overwrite`).
    fn persist(self, target: &Path, overwrite: bool) -> std::io::Result<()> {
        match self {
            Part::Temp(t) if overwrite => t.persist(target).map(|_| ()).map_err(|e| e.error),
            Part::Temp(t) => t.persist_noclobber(target).map(|_| ()).map_err(|e| e.error),
            Part::Resumable { path, file } => {
                // from here on the partial file is removed if it cannot be renamed
                let temp = tempfile::TempPath::try_from_path(path)?;
                let r = if overwrite {
                    temp.persist(target)
                } else {
                    temp.persist_noclobber(target)
                };
                drop(file);
                r.map_err(|e| e.error)
            }
        }
    }

    /// Removes a partial file that must not be continued (bad digest, wrong size).
    fn discard(self) {
        if let Part::Resumable { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Opens (or creates) the partial file of a `--resume` transfer of `name` and locks it.
fn open_partial(dir: &Path, name: &str) -> std::result::Result<(PathBuf, File), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(partial_name(name));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open the partial file {}: {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| format!("{name:?} is being received by another session right now; try again later"),
    )?;
    if !file
        .metadata()
        .map_err(|e| format!("cannot read the partial file {}: {e}", path.display()))?
        .is_file()
    {
        return Err(format!("{} is not a regular file", path.display()));
    }
    Ok((path, file))
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
    let Header {
        name,
        size,
        checksum,
        resume,
    } = read_header(stream, peer, idle).await?;
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
    let reporter = Reporter {
        progress,
        peer,
        index,
        count,
        name: &name,
        size,
    };

    // 1. Where the data goes, and what is already there (`--resume`).
    let mut hasher = checksum.hasher();
    let mut have = 0u64;
    let part = if resume {
        let (path, file) =
            open_partial(&options.dir, &name).map_err(|m| refuse(FailureKind::Io, m))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > 0 && len <= size {
            let f = file.try_clone().map_err(|e| {
                refuse(
                    FailureKind::Io,
                    format!("cannot reopen the partial file: {e}"),
                )
            })?;
            let mut h = checksum.hasher();
            let hashed = tokio::task::spawn_blocking(move || {
                hash_range(&f, 0, len, &mut h, |_| {}).map(|()| h)
            })
            .await
            .map_err(|e| refuse(FailureKind::Io, format!("the hashing task failed: {e}")))?;
            // an unreadable partial file is simply started over
            if let Ok(h) = hashed {
                have = len;
                hasher = h;
            }
        }
        Part::Resumable { path, file }
    } else {
        Part::Temp(
            tempfile::Builder::new()
                .prefix(".opskit-recv-")
                .suffix(".part")
                .tempfile_in(&options.dir)
                .map_err(|e| {
                    refuse(
                        FailureKind::Io,
                        format!("cannot create a temporary file in the receiver's directory: {e}"),
                    )
                })?,
        )
    };
    let prefix = if have > 0 { hasher.digest() } else { [0u8; 32] };
    deadline(
        idle,
        || format!("accepting {name:?} from {peer}"),
        stream.write_all(&encode_accept(have, checksum, &prefix)),
    )
    .await?;
    // 2. Where the sender starts: after our prefix (it matched its file) or at 0.
    let from = deadline(
        with_hashing(idle, have),
        || format!("waiting for {name:?} to start from {peer}"),
        stream.read_u64(),
    )
    .await?;
    if from != 0 && from != have {
        return Err(refuse(
            FailureKind::Protocol,
            format!("{name:?}: the sender starts at byte {from}; only 0 or {have} is possible"),
        ));
    }
    if from == 0 {
        hasher = checksum.hasher();
    }
    let file = part.file().map_err(|e| {
        refuse(
            FailureKind::Io,
            format!("cannot open the temporary file: {e}"),
        )
    })?;

    let (full_tx, full_rx) = mpsc::channel::<(Vec<u8>, usize)>(BUFFERS);
    let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    for buf in pool.drain(..) {
        let _ = free_tx.try_send(buf);
    }
    let worker = tokio::task::spawn_blocking(move || {
        write_worker(file, from, size, hasher, full_rx, free_tx)
    });

    // 3. Read frames while the worker hashes and writes the previous ones. Each read has the
    //    idle deadline and, past the grace period, the one by which the file's average rate
    //    would fall under the minimum: a peer dripping bytes cannot hold a session slot.
    let accepted = tokio::time::Instant::now();
    let read_result: Result<[u8; 32]> = async {
        let mut done = from;
        let within = |done: u64| -> Duration {
            match options.min_rate {
                Some(rate) if rate > 0 => {
                    let due = accepted
                        + options.rate_grace
                        + Duration::from_secs_f64((done - from) as f64 / rate as f64);
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
                let mut trailer = [0u8; 32];
                deadline(
                    within(done),
                    || format!("reading the digest of {name:?} from {peer}"),
                    stream.read_exact(&mut trailer),
                )
                .await
                .map_err(slow)?;
                return Ok(trailer);
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
                return Err(refuse(FailureKind::Io, "the receiver's writer stopped".into()));
            };
            deadline(
                within(done),
                || format!("reading {name:?} from {peer}"),
                stream.read_exact(&mut buf[..len]),
            )
            .await
            .map_err(slow)?;
            if full_tx.send((buf, len)).await.is_err() {
                return Err(refuse(FailureKind::Io, "the receiver's writer stopped".into()));
            }
            done += len as u64;
            reporter.report(done, Phase::Transferring);
        }
    }
    .await;
    drop(full_tx);
    let written = worker
        .await
        .map_err(|e| refuse(FailureKind::Io, format!("the writer task failed: {e}")))?;
    // Take the buffers back for the next file.
    while let Ok(buf) = free_rx.try_recv() {
        pool.push(buf);
    }
    let trailer = match read_result {
        Ok(t) => t,
        Err(e) => {
            // a writer failure (disk full) says more than "the writer stopped"
            let e = match (&e, &written.digest) {
                (
                    Error::Transfer {
                        kind: FailureKind::Io,
                        ..
                    },
                    Err(w),
                ) => refuse(
                    FailureKind::Io,
                    format!("the receiver could not write {name:?}: {w}"),
                ),
                _ => e,
            };
            if matches!(
                &e,
                Error::Transfer {
                    kind: FailureKind::Size | FailureKind::Checksum,
                    ..
                }
            ) {
                part.discard();
            } else if let Part::Resumable { .. } = part {
                tracing::info!(
                    file = %name,
                    kept = from + written.bytes,
                    "transfer cut; the partial file is kept for --resume"
                );
            }
            return Err(e);
        }
    };
    let actual = written.digest.map_err(|e| {
        refuse(
            FailureKind::Io,
            format!("the receiver could not write {name:?}: {e}"),
        )
    })?;
    if actual != trailer {
        part.discard();
        return Err(refuse(
            FailureKind::Checksum,
            format!(
                "{name:?}: the {checksum} of the received data is {} but the sender's is {}; the file was discarded",
                hex::encode(actual),
                hex::encode(trailer)
            ),
        ));
    }
    if let Err(e) = part.persist(&target, options.overwrite) {
        // The temporary or partial file is removed with it.
        let kind = if e.kind() == std::io::ErrorKind::AlreadyExists {
            FailureKind::Exists
        } else {
            FailureKind::Io
        };
        return Err(refuse(
            kind,
            format!("cannot store {name:?} on the receiver: {e}"),
        ));
    }
    if let Ok(dir) = File::open(&options.dir) {
        let _ = dir.sync_all();
    }
    deadline(
        idle,
        || format!("acknowledging {name:?} to {peer}"),
        stream.write_all(&encode_done(checksum, &actual)),
    )
    .await?;
    reporter.report(size, Phase::Done);
    Ok(FileReport {
        name: name.clone(),
        path: target,
        size,
        algorithm: checksum,
        digest: hex::encode(actual),
        sent: size - from,
        resumed_from: from,
    })
}
