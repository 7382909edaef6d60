//! Stream sockets (TCP and Unix): connecting with a deadline, listening (a stale Unix socket
//! file is replaced only when nothing listens on it), and the two-way [`pump`].

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::{BUFFER_SIZE, End, Input, Options, Output, Report};
use crate::target::{Endpoint, resolve};
use crate::{Error, Result};

/// Connects to `endpoint` (every address of a name in turn) within `timeout`, name resolution
/// included. A socket the kernel connected to itself (loopback, nothing listening) counts as
/// refused.
pub async fn connect_tcp(endpoint: &Endpoint, timeout: Duration) -> Result<TcpStream> {
    let start = Instant::now();
    let timed_out = || Error::ConnectTimeout {
        target: endpoint.to_string(),
        after: timeout,
    };
    let addrs = match resolve(endpoint, timeout).await {
        Ok(a) => a,
        Err(Error::Timeout { .. }) => return Err(timed_out()),
        Err(e) => return Err(e),
    };
    let mut last: Option<Error> = None;
    for addr in addrs {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(timed_out());
        }
        match tokio::time::timeout(left, TcpStream::connect(addr)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(stream)) => {
                if stream.local_addr().ok() == stream.peer_addr().ok() {
                    last = Some(Error::Connect {
                        addr,
                        source: io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            "nothing listens there (the kernel connected the socket to itself)",
                        ),
                    });
                    continue;
                }
                // interactive use: no Nagle delay on short lines; bulk writes are large anyway
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => return Err(timed_out()),
            Ok(Err(source)) => last = Some(Error::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| Error::Resolve {
        name: endpoint.host.clone(),
        reason: "no addresses".into(),
    }))
}

/// Connects to the Unix socket at `path` within `timeout`.
pub async fn connect_unix(path: &Path, timeout: Duration) -> Result<UnixStream> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Err(_) => Err(Error::ConnectTimeout {
            target: format!("unix socket {}", path.display()),
            after: timeout,
        }),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(Error::ConnectUnix {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Binds a TCP listener on `addr` (port 0: a free port; read it with `local_addr`).
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// A Unix listener that removes its socket file when dropped (if the file is still its own).
#[derive(Debug)]
pub struct UnixSocket {
    pub listener: UnixListener,
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl UnixSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let same = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if same.is_some() && same == self.id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Listens on the Unix socket `path`. A socket file already there is removed first only when
/// nothing listens on it (a connect is refused: left over by a process that died); a live
/// listener, or a file that is not a socket, is an error that says so.
pub async fn bind_unix(path: &Path) -> Result<UnixSocket> {
    let refuse = |reason: String| Error::BindUnix {
        path: path.to_owned(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(refuse(e.to_string())),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(refuse(
                "the path exists and is not a socket (not removed); choose another path".into(),
            ));
        }
        Ok(_) => {
            match tokio::time::timeout(Duration::from_secs(1), UnixStream::connect(path)).await {
                Ok(Ok(_)) => {
                    return Err(refuse(
                        "another process is listening on it; stop it or choose another path".into(),
                    ));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::debug!(path = %path.display(), "removing a stale socket file");
                    std::fs::remove_file(path)
                        .map_err(|e| refuse(format!("cannot remove the stale socket file: {e}")))?;
                }
                Ok(Err(e)) => {
                    return Err(refuse(format!(
                        "a socket file is there and cannot be checked ({e}); not removed"
                    )));
                }
                Err(_) => {
                    return Err(refuse(
                        "a process holds the socket and did not answer within 1s; not removed"
                            .into(),
                    ));
                }
            }
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| refuse(e.to_string()))?;
    let id = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    Ok(UnixSocket {
        listener,
        path: path.to_owned(),
        id,
    })
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    crate::scan::is_exhaustion(e)
        || matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        )
}

/// Accepts one TCP connection, within `within` when given. Running out of descriptors and
/// connections reset before `accept` make it wait and try again.
pub async fn accept_tcp(
    listener: &TcpListener,
    within: Option<Duration>,
) -> Result<(TcpStream, SocketAddr)> {
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let accepting = async {
        loop {
            match listener.accept().await {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, peer));
                }
                Err(e) if is_transient_accept_error(&e) => {
                    tracing::warn!(error = %e, "accept failed, retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("accepting a connection on {local}"),
                        source,
                    });
                }
            }
        }
    };
    within_deadline(accepting, within, || local.clone()).await
}

/// Accepts one connection on a Unix socket, within `within` when given.
pub async fn accept_unix(socket: &UnixSocket, within: Option<Duration>) -> Result<UnixStream> {
    let local = format!("unix socket {}", socket.path.display());
    let accepting = async {
        loop {
            match socket.listener.accept().await {
                Ok((s, _)) => return Ok(s),
                Err(e) if is_transient_accept_error(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("accepting a connection on {local}"),
                        source,
                    });
                }
            }
        }
    };
    within_deadline(accepting, within, || local.clone()).await
}

async fn within_deadline<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    within: Option<Duration>,
    local: impl FnOnce() -> String,
) -> Result<T> {
    match within {
        None => fut.await,
        Some(after) => tokio::time::timeout(after, fut).await.unwrap_or_else(|_| {
            Err(Error::AcceptTimeout {
                local: local(),
                after,
            })
        }),
    }
}

/// How the sending direction failed.
enum UpError {
    Input(io::Error),
    Net(io::Error),
}

/// How the receiving direction ended.
enum DownEnd {
    PeerClosed,
    OutputClosed,
}

/// Moves bytes both ways between `input`/`output` and a connected stream (its two halves)
/// until the session ends as [`Options`] say; `peer` names the other side in errors.
pub async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    peer: &str,
    input: &mut Input,
    output: &Output,
    opts: &Options,
) -> Result<Report>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last_ms = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let touch = || {
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        last_ms.store(ms, Ordering::Relaxed);
    };
    let half_close = opts.half_close;

    let up = async {
        loop {
            match input.fill().await {
                Err(e) => return Err(UpError::Input(e)),
                Ok(false) => {
                    if half_close {
                        // the peer may have gone already: that shows on the read side
                        let _ = writer.shutdown().await;
                    }
                    touch();
                    return Ok(());
                }
                Ok(true) => {}
            }
            let Some(chunk) = input.pending().cloned() else {
                continue;
            };
            writer.write_all(&chunk).await.map_err(UpError::Net)?;
            input.consume();
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            touch();
        }
    };
    let down = async {
        let mut buf = BytesMut::with_capacity(BUFFER_SIZE);
        loop {
            buf.reserve(BUFFER_SIZE);
            let n = reader.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(DownEnd::PeerClosed);
            }
            received.fetch_add(n as u64, Ordering::Relaxed);
            touch();
            if output.write(buf.split().freeze()).await.is_err() {
                return Ok(DownEnd::OutputClosed);
            }
        }
    };
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let broken = |source: io::Error| Error::Broken {
        peer: peer.to_owned(),
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        source,
    };
    let end = loop {
        let last = start + Duration::from_millis(last_ms.load(Ordering::Relaxed));
        let idle_at = opts.idle_timeout.map(|d| last + d);
        let quiet_at = if up_done {
            opts.quit_after_eof.map(|d| last + d)
        } else {
            None
        };
        let wake = match (idle_at, quiet_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep_until = wake.unwrap_or_else(|| start + Duration::from_secs(86_400 * 365));
        tokio::select! {
            r = &mut up, if !up_done => {
                match r {
                    Ok(()) => {}
                    Err(UpError::Input(source)) => return Err(Error::Io {
                        context: "reading the input".into(),
                        source,
                    }),
                    Err(UpError::Net(e)) => return Err(broken(e)),
                }
                up_done = true;
                if down_done {
                    break End::Done;
                }
            }
            r = &mut down, if !down_done => {
                match r.map_err(&broken)? {
                    DownEnd::OutputClosed => break End::OutputClosed,
                    DownEnd::PeerClosed => {
                        down_done = true;
                        if up_done {
                            break End::Done;
                        }
                        if opts.end_on_peer_close {
                            break End::PeerClosed;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(sleep_until.into()), if wake.is_some() => {
                let now = Instant::now();
                let last = start + Duration::from_millis(last_ms.load(Ordering::Relaxed));
                if up_done && opts.quit_after_eof.is_some_and(|d| now >= last + d) {
                    break End::Quiet;
                }
                if let Some(after) = opts.idle_timeout && now >= last + after {
                    return Err(Error::Idle { peer: peer.to_owned(), after });
                }
            }
        }
    };
    Ok(Report {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        datagrams: (0, 0),
        end,
    })
}
