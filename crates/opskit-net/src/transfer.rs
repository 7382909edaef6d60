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
/// Protocol version of a session of plain files (`opskit net send FILE...`).
pub const VERSION: u16 = 2;
/// Protocol version of a directory tree session (`opskit net send -r DIR`): version 2 plus a
/// relative path, an entry kind, a mode and a modification time in each header. A receiver
/// speaks both; a sender uses 3 only for `-r`, so plain sends still reach version 2 receivers.
pub const VERSION_TREE: u16 = 3;
/// Longest relative path of a tree entry (`-r`), in bytes of UTF-8.
pub const MAX_PATH: usize = 4096;
/// Fixed part of a version 3 header: the version 2 fields, then kind u8, mode u32, mtime
/// seconds i64, mtime nanoseconds u32.
pub const HEADER_FIXED_TREE: usize = HEADER_FIXED + 1 + 4 + 8 + 4;
/// Version 3 entry kind: a regular file (data follows, as in version 2).
pub const KIND_FILE: u8 = 0;
/// Version 3 entry kind: a directory (no data; answered with DONE at once).
pub const KIND_DIR: u8 = 1;
/// Permission bits a receiver applies from a version 3 header: setuid, setgid and sticky are
/// dropped.
pub const MODE_MASK: u32 = 0o777;
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
    /// A directory of a tree (`-r`): no data, no digest (`digest` is empty).
    pub directory: bool,
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

/// Checks a relative path of a tree entry from the wire (version 3): `/`-separated components,
/// each a plain name as [`validate_name`] wants it; not absolute, no empty component, no `.` or
/// `..`. Returns the components.
pub fn validate_path(path: &str) -> std::result::Result<Vec<&str>, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.len() > MAX_PATH {
        return Err(format!(
            "the path is {} bytes long, the limit is {MAX_PATH}",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "the path {path:?} is absolute; only paths inside the target directory are accepted"
        ));
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        if part.is_empty() {
            return Err(format!(
                "the path {path:?} has an empty component (`//` or a trailing `/`)"
            ));
        }
        if *part == "." || *part == ".." {
            return Err(format!(
                "the path {path:?} has a {part:?} component; only paths inside the target directory are accepted"
            ));
        }
        validate_name(part).map_err(|m| format!("in the path {path:?}: {m}"))?;
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn hello(version: u16, count: u32) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&version.to_be_bytes());
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

/// What a version 3 header says besides the version 2 fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryAttrs {
    /// [`KIND_FILE`] or [`KIND_DIR`].
    pub kind: u8,
    /// Mode bits (the receiver keeps `mode & 0o777`).
    pub mode: u32,
    /// Modification time: seconds since the Unix epoch (negative before it) and nanoseconds.
    pub mtime: (i64, u32),
}

/// Encodes a version 3 (tree) header frame; `path` is the entry's relative path.
pub fn encode_tree_header(
    path: &str,
    size: u64,
    checksum: Checksum,
    flags: u8,
    attrs: EntryAttrs,
) -> Vec<u8> {
    let len = HEADER_FIXED_TREE + path.len();
    let mut v = Vec::with_capacity(4 + len);
    v.extend_from_slice(&(len as u32).to_be_bytes());
    v.extend_from_slice(&size.to_be_bytes());
    v.push(checksum.code());
    v.push(flags);
    v.extend_from_slice(&(path.len() as u16).to_be_bytes());
    v.push(attrs.kind);
    v.extend_from_slice(&attrs.mode.to_be_bytes());
    v.extend_from_slice(&attrs.mtime.0.to_be_bytes());
    v.extend_from_slice(&attrs.mtime.1.to_be_bytes());
    v.extend_from_slice(path.as_bytes());
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

#[derive(Debug, Clone)]
struct Outgoing {
    path: PathBuf,
    /// The name on the wire: a file name (version 2) or a relative path (version 3).
    name: String,
    /// Version 3 (tree) entries: a directory rather than a file.
    directory: Option<bool>,
}

/// A directory tree to send with [`send_tree`] (`opskit net send -r`), from [`plan_tree`].
#[derive(Debug, Clone)]
pub struct TreePlan {
    entries: Vec<Outgoing>,
    /// What is left out, with why: symbolic links and special files (sockets, FIFOs, devices).
    pub skipped: Vec<(PathBuf, String)>,
}

impl TreePlan {
    /// Files and directories to send, in the order they go (each directory after its content).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Walks `dir` for [`send_tree`]: every regular file and directory under it (`dir` itself
/// included, as the top directory of the paths: `DIR/a/b`), in name order, each directory
/// after everything in it (so its time can be set last). Symbolic links are not followed and
/// not sent (neither are sockets, FIFOs and devices): they are listed in
/// [`TreePlan::skipped`]. A name that is not valid UTF-8 or not sendable is an error before
/// anything is sent, as is a tree of more than [`MAX_FILES`] entries.
pub fn plan_tree(dir: &Path) -> Result<TreePlan> {
    let bad = |path: &Path, reason: String| Error::BadFile {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(dir).map_err(|e| bad(dir, format!("cannot read it: {e}")))?;
    if !meta.is_dir() {
        return Err(bad(dir, "not a directory (-r sends directories)".into()));
    }
    let top = match dir.file_name() {
        Some(n) => n.to_owned(),
        None => std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
            .ok_or_else(|| bad(dir, "has no name to send it under (the root?)".into()))?,
    };
    let top = top
        .to_str()
        .ok_or_else(|| bad(dir, "the name is not valid UTF-8".into()))?
        .to_owned();
    validate_name(&top).map_err(|m| bad(dir, m))?;
    let mut plan = TreePlan {
        entries: Vec::new(),
        skipped: Vec::new(),
    };
    walk(dir, &top, &mut plan)?;
    if plan.entries.len() > MAX_FILES as usize {
        return Err(bad(
            dir,
            format!(
                "{} files and directories, the limit of one send is {MAX_FILES}",
                plan.entries.len()
            ),
        ));
    }
    Ok(plan)
}

/// [`plan_tree`] below `dir`, whose path on the wire is `rel`.
fn walk(dir: &Path, rel: &str, plan: &mut TreePlan) -> Result<()> {
    let bad = |path: &Path, reason: String| Error::BadFile {
        path: path.to_owned(),
        reason,
    };
    let mut children: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| bad(dir, format!("cannot list it: {e}")))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let name = child
            .file_name()
            .to_str()
            .ok_or_else(|| bad(&path, "the name is not valid UTF-8".into()))?
            .to_owned();
        validate_name(&name).map_err(|m| bad(&path, m))?;
        let rel = format!("{rel}/{name}");
        if rel.len() > MAX_PATH {
            return Err(bad(
                &path,
                format!("the path is longer than {MAX_PATH} bytes"),
            ));
        }
        let kind = child
            .file_type()
            .map_err(|e| bad(&path, format!("cannot read it: {e}")))?;
        if kind.is_dir() {
            walk(&path, &rel, plan)?;
        } else if kind.is_file() {
            plan.entries.push(Outgoing {
                path,
                name: rel,
                directory: Some(false),
            });
        } else if kind.is_symlink() {
            plan.skipped.push((
                path,
                "a symbolic link (links are not followed or sent)".into(),
            ));
        } else {
            plan.skipped
                .push((path, "not a regular file or directory".into()));
        }
        if plan.entries.len() > MAX_FILES as usize {
            break;
        }
    }
    plan.entries.push(Outgoing {
        path: dir.to_owned(),
        name: rel.to_owned(),
        directory: Some(true),
    });
    Ok(())
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
        if meta.is_dir() {
            return Err(bad(
                "not a regular file: a directory (send it with -r)".into()
            ));
        }
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
            directory: None,
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
    let planned = plan(files)?;
    Ok(send_planned(addr, &planned, VERSION, options, progress).await)
}

/// Sends a directory tree planned by [`plan_tree`] (`opskit net send -r`, protocol version 3):
/// each file as [`send_each`] sends files (checksummed, stored atomically, with its mode and
/// modification time), each directory after its content (created with its mode and time).
/// Refusals and failures follow [`send_each`]'s rule; the outcome of every entry, in order,
/// with its path on the wire (`DIR/a/b`) and its local path.
pub async fn send_tree(
    addr: SocketAddr,
    tree: &TreePlan,
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> Vec<(String, PathBuf, SendOutcome)> {
    let outcomes = send_planned(addr, &tree.entries, VERSION_TREE, options, progress).await;
    tree.entries
        .iter()
        .zip(outcomes)
        .map(|(e, (path, outcome))| (e.name.clone(), path, outcome))
        .collect()
}

/// [`send_each`] of a plan, in sessions of `version`.
async fn send_planned(
    addr: SocketAddr,
    planned: &[Outgoing],
    version: u16,
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> Vec<(PathBuf, SendOutcome)> {
    let mut out: Vec<(PathBuf, SendOutcome)> = Vec::with_capacity(planned.len());
    let mut rest: &[Outgoing] = planned;
    while !rest.is_empty() {
        let (landed, err) =
            match send_files_inner(addr, rest, version, options, progress.clone()).await {
                Ok(r) => (r, None),
                Err((r, e)) => (r, Some(e)),
            };
        let n = landed.len();
        for (o, report) in rest.iter().zip(landed) {
            out.push((o.path.clone(), SendOutcome::Sent(report)));
        }
        rest = &rest[n..];
        let Some(e) = err else { break };
        let Some((failed, after)) = rest.split_first() else {
            break;
        };
        // a protocol refusal (another version, a broken stream) ends the send: a new session
        // would meet the same answer
        let refused = matches!(&e, Error::Rejected { kind, .. } if *kind != FailureKind::Protocol);
        out.push((failed.path.clone(), SendOutcome::Failed(e)));
        rest = after;
        if !refused {
            out.extend(rest.iter().map(|o| (o.path.clone(), SendOutcome::NotSent)));
            break;
        }
    }
    out
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
    let planned = plan(files)?;
    send_files_inner(addr, &planned, VERSION, options, progress)
        .await
        .map_err(|(_, e)| e)
}

/// [`send_files`], returning on failure what landed before it.
async fn send_files_inner(
    addr: SocketAddr,
    plan: &[Outgoing],
    version: u16,
    options: &SendOptions,
    progress: Option<ProgressFn>,
) -> std::result::Result<Vec<FileReport>, (Vec<FileReport>, Error)> {
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
            stream.write_all(&hello(version, count as u32)),
        )
        .await?;
        Ok::<_, Error>(stream)
    };
    let mut stream = start.await.map_err(|e| (Vec::new(), e))?;
    let idle = options.idle_timeout;
    for (index, out) in plan.iter().cloned().enumerate() {
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
    let Outgoing {
        path,
        name,
        directory,
    } = out;
    let idle = options.idle_timeout;
    let checksum = options.checksum;
    let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(io(format!("reading {}", path.display())))?;
    let is_dir = directory == Some(true);
    if meta.is_dir() != is_dir {
        return Err(Error::BadFile {
            path,
            reason: "it changed from file to directory or back while the send ran".into(),
        });
    }
    let size = if is_dir { 0 } else { meta.len() };
    // version 3 (tree): the mode and time go with the header
    let attrs = directory.map(|d| {
        use std::os::unix::fs::MetadataExt;
        EntryAttrs {
            kind: if d { KIND_DIR } else { KIND_FILE },
            mode: meta.mode() & 0o7777,
            mtime: (meta.mtime(), meta.mtime_nsec().clamp(0, 999_999_999) as u32),
        }
    });
    if is_dir {
        return send_dir(stream, peer, path, name, checksum, attrs, idle).await;
    }
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
    let header = match attrs {
        Some(a) => encode_tree_header(&name, size, checksum, flags, a),
        None => encode_header(&name, size, checksum, flags),
    };
    deadline(
        idle,
        || format!("sending the header of {name:?} to {peer}"),
        stream.write_all(&header),
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
        directory: false,
    })
}

/// Sends a directory entry of a tree (version 3): a header, answered by DONE.
async fn send_dir(
    stream: &mut TcpStream,
    peer: SocketAddr,
    path: PathBuf,
    name: String,
    checksum: Checksum,
    attrs: Option<EntryAttrs>,
    idle: Duration,
) -> Result<FileReport> {
    let Some(attrs) = attrs else {
        return Err(Error::BadFile {
            path,
            reason: "a directory (send it with -r)".into(),
        });
    };
    deadline(
        idle,
        || format!("sending the directory {name:?} to {peer}"),
        stream.write_all(&encode_tree_header(&name, 0, checksum, 0, attrs)),
    )
    .await?;
    match read_reply(stream, idle, peer).await? {
        Reply::Done(..) => Ok(FileReport {
            name,
            path,
            size: 0,
            algorithm: checksum,
            digest: String::new(),
            sent: 0,
            resumed_from: 0,
            directory: true,
        }),
        Reply::Failed(kind, message) => Err(Error::Rejected {
            file: name,
            kind,
            message,
        }),
        Reply::Accept { .. } => Err(Error::Protocol(format!(
            "{peer} answered the directory {name:?} with ACCEPT"
        ))),
    }
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
            let hello = match hello {
                Ok(h) => h,
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
                receive_after_hello(stream, hello, &options, progress, on_file).await
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

/// A session's hello: its protocol version ([`VERSION`] or [`VERSION_TREE`]) and entry count.
#[derive(Debug, Clone, Copy)]
struct Hello {
    version: u16,
    count: u32,
}

/// Reads and checks the hello.
async fn read_hello(stream: &mut TcpStream, peer: SocketAddr, within: Duration) -> Result<Hello> {
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
    if version != VERSION && version != VERSION_TREE {
        return Err(refuse(
            FailureKind::Protocol,
            format!(
                "protocol version {version} is not supported: this receiver speaks version {VERSION} \
                 (and {VERSION_TREE} for directory trees); use an opskit of the same release on both sides"
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
    Ok(Hello { version, count })
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
    let (stream, hello) = loop {
        let (mut stream, peer) = listener
            .accept()
            .await
            .map_err(io("accepting a connection"))?;
        match read_hello(&mut stream, peer, options.hello_timeout).await {
            Ok(hello) => break (stream, hello),
            Err(e) => {
                tracing::info!(%peer, error = %e, "not an opskit sender; still waiting");
                tell_and_close(&mut stream, &e, options.idle_timeout).await;
            }
        }
    };
    let mut files = Vec::new();
    receive_after_hello(stream, hello, options, progress, |f| files.push(f)).await?;
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
    let hello = match read_hello(&mut stream, peer, options.hello_timeout).await {
        Ok(h) => h,
        Err(e) => {
            tell_and_close(&mut stream, &e, options.idle_timeout).await;
            return Err(e);
        }
    };
    receive_after_hello(stream, hello, options, progress, on_file).await
}

/// [`receive_session`] once the hello was read.
async fn receive_after_hello(
    mut stream: TcpStream,
    hello: Hello,
    options: &ReceiveOptions,
    progress: Option<ProgressFn>,
    mut on_file: impl FnMut(FileReport),
) -> Result<()> {
    let peer = stream.peer_addr().map_err(io("reading the peer address"))?;
    let _ = stream.set_nodelay(true);
    let result = match options.session_timeout {
        None => session(&mut stream, peer, hello, options, progress, &mut on_file).await,
        Some(limit) => match tokio::time::timeout(
            limit,
            session(&mut stream, peer, hello, options, progress, &mut on_file),
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
    hello: Hello,
    options: &ReceiveOptions,
    progress: Option<ProgressFn>,
    on_file: &mut impl FnMut(FileReport),
) -> Result<()> {
    // Chunk buffers, allocated once per session and reused for every file.
    let mut pool: Vec<Vec<u8>> = (0..BUFFERS).map(|_| vec![0u8; MAX_CHUNK]).collect();
    let count = hello.count as usize;
    for index in 0..count {
        let file = receive_file(
            stream,
            peer,
            hello.version,
            options,
            index,
            count,
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
    /// Version 3 (tree) sessions only.
    attrs: Option<EntryAttrs>,
}

async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    idle: Duration,
    version: u16,
) -> Result<Header> {
    let len = deadline(
        idle,
        || format!("reading a file header from {peer}"),
        stream.read_u32(),
    )
    .await? as usize;
    let (fixed, longest) = if version == VERSION_TREE {
        (HEADER_FIXED_TREE, MAX_PATH)
    } else {
        (HEADER_FIXED, MAX_NAME)
    };
    if !(fixed..=fixed + longest).contains(&len) {
        return Err(refuse(
            FailureKind::Protocol,
            format!(
                "a file header of {len} bytes (valid: {fixed} to {})",
                fixed + longest
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
    if name_len != len - fixed {
        return Err(refuse(
            FailureKind::Protocol,
            format!(
                "the header says the name has {name_len} bytes but carries {}",
                len - fixed
            ),
        ));
    }
    let attrs = if version == VERSION_TREE {
        let t = &buf[HEADER_FIXED..HEADER_FIXED_TREE];
        let attrs = EntryAttrs {
            kind: t[0],
            mode: u32::from_be_bytes([t[1], t[2], t[3], t[4]]),
            mtime: (
                i64::from_be_bytes([t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12]]),
                u32::from_be_bytes([t[13], t[14], t[15], t[16]]),
            ),
        };
        let bad = |m: String| Err(refuse(FailureKind::Protocol, m));
        match attrs.kind {
            KIND_FILE => {}
            KIND_DIR if size != [0u8; 8] || flags != 0 => {
                return bad("a directory entry with a size or flags".into());
            }
            KIND_DIR => {}
            k => return bad(format!("entry kind {k} is not known to this receiver")),
        }
        if attrs.mtime.1 >= 1_000_000_000 {
            return bad(format!("a modification time of {} ns", attrs.mtime.1));
        }
        Some(attrs)
    } else {
        None
    };
    let name = std::str::from_utf8(&buf[fixed..])
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
        attrs,
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

/// Files with at least this many bytes to receive are hashed on a thread of their own.
const PARALLEL_HASH_MIN: u64 = 8 * MAX_CHUNK as u64;

/// The blocking side of a receive: hashes each chunk and writes it at `start` onwards (all-zero
/// chunks become holes), then sets the final length and fsyncs. When the data stops short
/// (a cut), the file is left holding exactly the bytes that arrived.
///
/// With [`PARALLEL_HASH_MIN`] bytes or more to receive, the hash runs on a thread of its own,
/// one chunk ahead of this thread's writes (hash and page-cache write in one thread were the
/// receiver's slowest stage; docs/benchmarks.md).
fn write_worker(
    file: File,
    start: u64,
    size: u64,
    mut hasher: Hasher,
    mut full_rx: mpsc::Receiver<(Vec<u8>, usize)>,
    free_tx: mpsc::Sender<Vec<u8>>,
    attrs: Option<(EntryAttrs, std::time::SystemTime)>,
) -> Written {
    let mut written = 0u64;
    if size.saturating_sub(start) < PARALLEL_HASH_MIN {
        let next = || {
            let (buf, n) = full_rx.blocking_recv()?;
            hasher.update(&buf[..n]);
            Some((buf, n))
        };
        let r = write_chunks(file, start, size, next, free_tx, attrs, &mut written);
        return Written {
            bytes: written,
            digest: r.map(|()| hasher.digest()),
        };
    }
    std::thread::scope(|s| {
        let (hashed_tx, hashed_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS);
        let hashing = s.spawn(move || {
            while let Some((buf, n)) = full_rx.blocking_recv() {
                hasher.update(&buf[..n]);
                // the writer stopped (an error): so does the hash
                if hashed_tx.send((buf, n)).is_err() {
                    break;
                }
            }
            hasher
        });
        // `free_tx` and `hashed_rx` go with `write_chunks`: when it fails, the socket reader
        // sees the writer gone, stops, and with it the hashing thread.
        let r = write_chunks(
            file,
            start,
            size,
            move || hashed_rx.recv().ok(),
            free_tx,
            attrs,
            &mut written,
        );
        let digest = match hashing.join() {
            Ok(h) => r.map(|()| h.digest()),
            Err(_) => Err(std::io::Error::other("the hashing thread failed")),
        };
        Written {
            bytes: written,
            digest,
        }
    })
}

/// Writes the chunks `next` gives at `start` onwards (see [`write_worker`]), handing each
/// buffer back through `free_tx`; counts the bytes in `written`.
fn write_chunks(
    mut file: File,
    start: u64,
    size: u64,
    mut next: impl FnMut() -> Option<(Vec<u8>, usize)>,
    free_tx: mpsc::Sender<Vec<u8>>,
    attrs: Option<(EntryAttrs, std::time::SystemTime)>,
    written: &mut u64,
) -> std::io::Result<()> {
    let mut pending_hole = false;
    // whatever a partial file holds past `start` (a longer, older attempt) goes
    file.set_len(start)?;
    file.seek(SeekFrom::Start(start))?;
    while let Some((buf, n)) = next() {
        let data = &buf[..n];
        if is_zero(data) {
            file.seek(SeekFrom::Current(n as i64))?;
            pending_hole = true;
        } else {
            file.write_all(data)?;
            pending_hole = false;
        }
        *written += n as u64;
        // The async side may be gone (error); then the buffer is simply dropped.
        let _ = free_tx.blocking_send(buf);
    }
    if start + *written != size {
        file.set_len(start + *written)?;
        return Err(std::io::Error::other(format!(
            "the data ended after {} of {size} bytes",
            start + *written
        )));
    }
    if pending_hole || *written == 0 {
        file.set_len(size)?;
    }
    if let Some((attrs, mtime)) = attrs {
        apply_attrs(&file, &attrs, mtime)?;
    }
    file.sync_all()
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

/// Under `root`, walks `parts` (directories of a tree entry's path): creates the missing ones
/// (mode 0700 until their own entry sets theirs) when `create`, and refuses a component that is
/// a symbolic link or not a directory, so no path leads out of `root`. Returns the directory.
fn tree_dir(root: &Path, parts: &[&str], create: bool) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut dir = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        dir.push(part);
        let shown = parts[..=i].join("/");
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refuse(
                    FailureKind::BadName,
                    format!(
                        "{shown:?} is a symbolic link on the receiver; paths are not followed through links"
                    ),
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(refuse(
                    FailureKind::Exists,
                    format!("{shown:?} exists on the receiver and is not a directory"),
                ));
            }
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| {
                        refuse(
                            FailureKind::Io,
                            format!("cannot create the directory {shown:?}: {e}"),
                        )
                    })?;
            }
            Err(e) => {
                return Err(refuse(
                    FailureKind::Io,
                    format!("cannot use the directory {shown:?}: {e}"),
                ));
            }
        }
    }
    Ok(dir)
}

/// The modification time of a version 3 header.
fn entry_mtime(name: &str, (secs, nanos): (i64, u32)) -> Result<std::time::SystemTime> {
    let epoch = std::time::UNIX_EPOCH;
    let t = if secs >= 0 {
        epoch.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        epoch
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    t.ok_or_else(|| {
        refuse(
            FailureKind::Protocol,
            format!("{name:?}: the modification time {secs} s is out of range"),
        )
    })
}

/// Applies a tree entry's mode (setuid, setgid and sticky dropped) and modification time.
fn apply_attrs(
    file: &File,
    attrs: &EntryAttrs,
    mtime: std::time::SystemTime,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(attrs.mode & MODE_MASK))?;
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
}

/// A directory entry of a tree session: created if missing (its parents too), then given its
/// mode and time. The sender sends a directory after everything in it, so its time stays.
fn receive_dir(
    options: &ReceiveOptions,
    parts: &[&str],
    name: &str,
    attrs: &EntryAttrs,
) -> Result<PathBuf> {
    let mtime = entry_mtime(name, attrs.mtime)?;
    let dir = tree_dir(&options.dir, parts, true)?;
    // opened without following a link: the walk above refused links, this refuses a late one
    let fd = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        refuse(
            FailureKind::Io,
            format!("cannot open the directory {name:?}: {e}"),
        )
    })?;
    apply_attrs(&File::from(fd), attrs, mtime).map_err(|e| {
        refuse(
            FailureKind::Io,
            format!("cannot set the mode and time of the directory {name:?}: {e}"),
        )
    })?;
    Ok(dir)
}

#[allow(clippy::too_many_arguments)]
async fn receive_file(
    stream: &mut TcpStream,
    peer: SocketAddr,
    version: u16,
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
        attrs,
    } = read_header(stream, peer, idle, version).await?;
    // Where it goes: the target directory (version 2), or a path inside it (version 3).
    let (parent, target, tree) = match &attrs {
        None => {
            validate_name(&name).map_err(|m| refuse(FailureKind::BadName, m))?;
            (options.dir.clone(), options.dir.join(&name), None)
        }
        Some(a) => {
            let parts = validate_path(&name).map_err(|m| refuse(FailureKind::BadName, m))?;
            if a.kind == KIND_DIR {
                let path = receive_dir(options, &parts, &name, a)?;
                deadline(
                    idle,
                    || format!("acknowledging {name:?} to {peer}"),
                    stream.write_all(&encode_done(checksum, &[0u8; 32])),
                )
                .await?;
                return Ok(FileReport {
                    name: name.clone(),
                    path,
                    size: 0,
                    algorithm: checksum,
                    digest: String::new(),
                    sent: 0,
                    resumed_from: 0,
                    directory: true,
                });
            }
            let mtime = entry_mtime(&name, a.mtime)?;
            let dirs: Vec<String> = parts[..parts.len() - 1]
                .iter()
                .map(|p| (*p).to_owned())
                .collect();
            let last = parts[parts.len() - 1];
            let parent = {
                let d: Vec<&str> = dirs.iter().map(String::as_str).collect();
                tree_dir(&options.dir, &d, true)?
            };
            let target = parent.join(last);
            (parent, target, Some((dirs, *a, mtime)))
        }
    };
    if let Some(max) = options.max_file_size
        && size > max
    {
        return Err(refuse(
            FailureKind::TooLarge,
            format!("{name:?} is {size} bytes, this receiver accepts at most {max}"),
        ));
    }
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
        let (path, file) = open_partial(&parent, &name).map_err(|m| refuse(FailureKind::Io, m))?;
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
                .tempfile_in(&parent)
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
    let tree_attrs = tree.as_ref().map(|(_, a, t)| (*a, *t));
    let worker = tokio::task::spawn_blocking(move || {
        write_worker(file, from, size, hasher, full_rx, free_tx, tree_attrs)
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
    // the path is walked again right before the rename: a directory swapped for a link while
    // the data came is refused, not followed
    if let Some((dirs, ..)) = &tree {
        let d: Vec<&str> = dirs.iter().map(String::as_str).collect();
        if let Err(e) = tree_dir(&options.dir, &d, false) {
            part.discard();
            return Err(e);
        }
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
    if let Ok(dir) = File::open(&parent) {
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
        directory: false,
    })
}
