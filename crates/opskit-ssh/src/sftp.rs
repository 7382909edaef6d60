//! SFTP: the same file to many hosts (`put`), one file back (`get`), directory listings (`ls`).
//!
//! `put` writes to a hidden temporary name next to the destination and renames it into place
//! (OpenSSH's `posix-rename@openssh.com` when offered, so an existing file is replaced
//! atomically); a reader never sees a half-written file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use russh::client::Handle;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::extensions::HardlinkExtension;
use russh_sftp::protocol::{FileType, Packet, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::outcome::{Event, EventSink, HostReport, Outcome, Phase, RemoteEntry};
use crate::run::{FanOut, fan_out};
use crate::session::{Client, ConnectOptions, connect};
use crate::target::Target;

const CHUNK: usize = 256 * 1024;
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

async fn open_sftp(handle: &Handle<Client>) -> Result<SftpSession, String> {
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| format!("cannot open a channel for SFTP: {e}"))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| format!("the server refused the sftp subsystem: {e}"))?;
    SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| format!("SFTP start failed: {e}"))
}

/// Runs an SFTP job on one connected host under the per-host deadline, filling `report`.
async fn with_sftp<F, Fut>(target: &Target, opts: &ConnectOptions, job: F) -> HostReport
where
    F: FnOnce(Handle<Client>, SftpSession, HostReport) -> Fut,
    Fut: Future<Output = (HostReport, Handle<Client>)>,
{
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let mut report = HostReport::new(&target.label, &target.host, target.port);
    let Some(conn) = connect(target, opts, deadline, &mut report).await else {
        report.duration = started.elapsed();
        return report;
    };
    let sftp = match tokio::time::timeout_at(deadline, open_sftp(&conn.handle)).await {
        Err(_) => {
            report.outcome = Outcome::Timeout {
                phase: Phase::Command,
            };
            report.message = Some("SFTP did not start before the deadline".into());
            report.duration = started.elapsed();
            return report;
        }
        Ok(Err(msg)) => {
            report.outcome = Outcome::Failed { exit_code: None };
            report.message = Some(msg);
            report.duration = started.elapsed();
            return report;
        }
        Ok(Ok(s)) => s,
    };
    let label = report.label.clone();
    let (host, port) = (report.host.clone(), report.port);
    let host_key = report.host_key.clone();
    let crate::session::Connection { handle, jumps } = conn;
    let mut report = match tokio::time::timeout_at(deadline, job(handle, sftp, report)).await {
        Ok((report, handle)) => {
            crate::session::Connection { handle, jumps }
                .disconnect(std::time::Duration::from_secs(1))
                .await;
            report
        }
        Err(_) => {
            let mut r = HostReport::new(&label, &host, port);
            r.host_key = host_key;
            r.outcome = Outcome::Timeout {
                phase: Phase::Command,
            };
            r.message = Some("the transfer did not finish before the deadline (--timeout)".into());
            r
        }
    };
    report.duration = started.elapsed();
    report
}

fn fail(report: &mut HostReport, msg: String) {
    report.outcome = Outcome::Failed { exit_code: None };
    report.message = Some(msg);
}

fn sftp_error(what: &str, path: &str, e: &russh_sftp::client::error::Error) -> String {
    match e {
        russh_sftp::client::error::Error::Status(s) if s.status_code == StatusCode::NoSuchFile => {
            format!("{what} {path}: no such file or directory")
        }
        russh_sftp::client::error::Error::Status(s)
            if s.status_code == StatusCode::PermissionDenied =>
        {
            format!("{what} {path}: permission denied")
        }
        other => format!("{what} {path}: {other}"),
    }
}

fn split_remote(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", path),
    }
}

fn join_remote(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Copies `local` to `remote_paths[i]` on `targets[i]`, many hosts at once.
pub async fn put(
    targets: Vec<Target>,
    remote_paths: Vec<String>,
    local: PathBuf,
    opts: ConnectOptions,
    fan: FanOut,
    sink: Option<EventSink>,
) -> Vec<HostReport> {
    let paths = Arc::new(remote_paths);
    let local = Arc::new(local);
    let opts = Arc::new(opts);
    let job_sink = sink.clone();
    fan_out(targets, fan, sink, move |i, target| {
        let (paths, local, opts, sink) =
            (paths.clone(), local.clone(), opts.clone(), job_sink.clone());
        async move {
            let remote = paths.get(i).cloned().unwrap_or_default();
            with_sftp(&target, &opts, |handle, sftp, mut report| async move {
                if let Err(msg) =
                    put_file(i, &handle, &sftp, &local, &remote, &sink, &mut report).await
                {
                    fail(&mut report, msg);
                }
                let _ = sftp.close().await;
                (report, handle)
            })
            .await
        }
    })
    .await
}

async fn put_file(
    index: usize,
    handle: &Handle<Client>,
    sftp: &SftpSession,
    local: &Path,
    remote: &str,
    sink: &Option<EventSink>,
    report: &mut HostReport,
) -> Result<(), String> {
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
    let total = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {}: {e}", local.display()))?
        .len();
    let base = local
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "file".into());
    // A destination that is a directory (or ends in '/') receives the file under its own name.
    let dest = if remote.ends_with('/') {
        join_remote(remote, &base)
    } else {
        match sftp.metadata(remote).await {
            Ok(m) if m.file_type().is_dir() => join_remote(remote, &base),
            _ => remote.to_string(),
        }
    };
    let (dir, name) = split_remote(&dest);
    let tmp = join_remote(
        dir,
        &format!(
            ".{name}.opskit-{}-{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ),
    );
    let mut out = sftp
        .create(tmp.as_str())
        .await
        .map_err(|e| sftp_error("cannot create", &tmp, &e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    let copy: Result<(), String> = async {
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
            if n == 0 {
                break;
            }
            out.write_all(buf.get(..n).unwrap_or_default())
                .await
                .map_err(|e| format!("write to {tmp} failed: {e}"))?;
            done += n as u64;
            if let Some(s) = sink {
                s(Event::Progress {
                    host: index,
                    done,
                    total,
                });
            }
        }
        out.shutdown()
            .await
            .map_err(|e| format!("write to {tmp} failed: {e}"))
    }
    .await;
    if let Err(msg) = copy {
        let _ = sftp.remove_file(tmp.as_str()).await;
        return Err(msg);
    }
    if let Err(msg) = rename_into_place(handle, sftp, &tmp, &dest).await {
        let _ = sftp.remove_file(tmp.as_str()).await;
        return Err(msg);
    }
    report.bytes = done;
    report.message = Some(format!("wrote {dest}"));
    Ok(())
}

/// `posix-rename@openssh.com` (replaces atomically), else plain SFTP rename (which refuses to
/// replace an existing file on OpenSSH, so the old file is removed first).
async fn rename_into_place(
    handle: &Handle<Client>,
    sftp: &SftpSession,
    tmp: &str,
    dest: &str,
) -> Result<(), String> {
    if let Ok(true) = posix_rename(handle, tmp, dest).await {
        return Ok(());
    }
    match sftp.rename(tmp, dest).await {
        Ok(()) => Ok(()),
        Err(_) if sftp.try_exists(dest).await.unwrap_or(false) => {
            sftp.remove_file(dest)
                .await
                .map_err(|e| sftp_error("cannot replace", dest, &e))?;
            sftp.rename(tmp, dest)
                .await
                .map_err(|e| sftp_error("cannot rename into", dest, &e))
        }
        Err(e) => Err(sftp_error("cannot rename into", dest, &e)),
    }
}

async fn posix_rename(handle: &Handle<Client>, tmp: &str, dest: &str) -> Result<bool, String> {
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| e.to_string())?;
    let raw = RawSftpSession::new(channel.into_stream());
    let version = raw.init().await.map_err(|e| e.to_string())?;
    if !version.extensions.contains_key("posix-rename@openssh.com") {
        return Ok(false);
    }
    let data: Result<Vec<u8>, _> = HardlinkExtension {
        oldpath: tmp.to_string(),
        newpath: dest.to_string(),
    }
    .try_into();
    let data = data.map_err(|e| e.to_string())?;
    let reply = raw
        .extended("posix-rename@openssh.com", data)
        .await
        .map_err(|e| e.to_string())?;
    match reply {
        Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(true),
        Packet::Status(s) => Err(s.error_message),
        _ => Ok(false),
    }
}

/// Copies `remote` on `target` to `local` (a file, or a directory to put it in). The local file
/// is written under a temporary name and renamed when complete.
pub async fn get(
    target: Target,
    remote: String,
    local: PathBuf,
    opts: ConnectOptions,
    sink: Option<EventSink>,
) -> HostReport {
    let started = Instant::now();
    let mut report = with_sftp(&target, &opts, |handle, sftp, mut report| async move {
        if let Err(msg) = get_file(&sftp, &remote, &local, &sink, &mut report).await {
            fail(&mut report, msg);
        }
        let _ = sftp.close().await;
        (report, handle)
    })
    .await;
    report.duration = started.elapsed();
    report
}

async fn get_file(
    sftp: &SftpSession,
    remote: &str,
    local: &Path,
    sink: &Option<EventSink>,
    report: &mut HostReport,
) -> Result<(), String> {
    let meta = sftp
        .metadata(remote)
        .await
        .map_err(|e| sftp_error("cannot read", remote, &e))?;
    if meta.file_type().is_dir() {
        return Err(format!("{remote} is a directory; get copies one file"));
    }
    let total = meta.size.unwrap_or(0);
    let (_, name) = split_remote(remote);
    // `missing-dir/` names a directory: it must exist (never write `./.missing-dir….tmp` and then
    // fail to rename it).
    let names_dir = local.as_os_str().to_string_lossy().ends_with('/');
    if names_dir && !local.is_dir() {
        return Err(format!(
            "local directory {} does not exist",
            local.display()
        ));
    }
    let dest = if local.is_dir() {
        local.join(name)
    } else {
        local.to_path_buf()
    };
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(format!("local directory {} does not exist", dir.display()));
    }
    let tmp = dir.join(format!(
        ".{}.opskit-{}-{}.tmp",
        dest.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut input = sftp
        .open(remote)
        .await
        .map_err(|e| sftp_error("cannot open", remote, &e))?;
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    let copy: Result<(), String> = async {
        loop {
            let n = input
                .read(&mut buf)
                .await
                .map_err(|e| format!("read of {remote} failed: {e}"))?;
            if n == 0 {
                break;
            }
            out.write_all(buf.get(..n).unwrap_or_default())
                .await
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            done += n as u64;
            if let Some(s) = sink {
                s(Event::Progress {
                    host: 0,
                    done,
                    total,
                });
            }
        }
        out.flush()
            .await
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        out.sync_all()
            .await
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
    }
    .await;
    if let Err(msg) = copy {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(msg);
    }
    if let Err(e) = tokio::fs::rename(&tmp, &dest).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(format!("cannot move into {}: {e}", dest.display()));
    }
    report.bytes = done;
    report.message = Some(format!("wrote {}", dest.display()));
    Ok(())
}

/// Lists `remote_paths[i]` on `targets[i]` (a directory's entries, or the file itself).
pub async fn ls(
    targets: Vec<Target>,
    remote_paths: Vec<String>,
    opts: ConnectOptions,
    fan: FanOut,
    sink: Option<EventSink>,
) -> Vec<HostReport> {
    let paths = Arc::new(remote_paths);
    let opts = Arc::new(opts);
    fan_out(targets, fan, sink, move |i, target| {
        let (paths, opts) = (paths.clone(), opts.clone());
        async move {
            let remote = paths.get(i).cloned().unwrap_or_default();
            with_sftp(&target, &opts, |handle, sftp, mut report| async move {
                if let Err(msg) = list(&sftp, &remote, &mut report).await {
                    fail(&mut report, msg);
                }
                let _ = sftp.close().await;
                (report, handle)
            })
            .await
        }
    })
    .await
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::Dir => "dir",
        FileType::File => "file",
        FileType::Symlink => "symlink",
        FileType::Other => "other",
    }
}

async fn list(sftp: &SftpSession, remote: &str, report: &mut HostReport) -> Result<(), String> {
    let meta = sftp
        .metadata(remote)
        .await
        .map_err(|e| sftp_error("cannot list", remote, &e))?;
    if !meta.file_type().is_dir() {
        report.entries.push(RemoteEntry {
            name: split_remote(remote).1.to_string(),
            kind: kind(meta.file_type()),
            size: meta.size.unwrap_or(0),
            mode: meta.permissions,
            mtime: meta.mtime,
        });
        return Ok(());
    }
    let dir = sftp
        .read_dir(remote)
        .await
        .map_err(|e| sftp_error("cannot list", remote, &e))?;
    for entry in dir {
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        let m = entry.metadata();
        report.entries.push(RemoteEntry {
            name,
            kind: kind(entry.file_type()),
            size: m.size.unwrap_or(0),
            mode: m.permissions,
            mtime: m.mtime,
        });
    }
    report.entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(())
}
