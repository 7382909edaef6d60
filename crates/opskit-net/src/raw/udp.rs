//! UDP: every input line is one datagram ([`super::Lines`]); every datagram received is written
//! to the output as it came.
//!
//! A connected socket ([`connect`]) talks to one peer, and an ICMP "port unreachable" comes back
//! as a refused [`Error::Connect`]. A listener ([`session`] with no peer) takes the first
//! sender as its peer (as `nc -u -l`), or with `follow_senders` answers whoever sent last.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{End, Input, Lines, Options, Output, Report};
use crate::echo::MAX_UDP_MESSAGE;
use crate::target::{Endpoint, resolve};
use crate::{Error, Result};

/// A UDP socket bound to a free local port and connected to `endpoint` (its first address),
/// name resolution within `timeout`.
pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<(UdpSocket, SocketAddr)> {
    let addr = match resolve(endpoint, timeout).await {
        Ok(a) => a[0],
        Err(Error::Timeout { .. }) => {
            return Err(Error::ConnectTimeout {
                target: endpoint.to_string(),
                after: timeout,
            });
        }
        Err(e) => return Err(e),
    };
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local).await.map_err(|source| Error::Bind {
        addr: local,
        source,
    })?;
    socket
        .connect(addr)
        .await
        .map_err(|source| Error::Connect { addr, source })?;
    Ok((socket, addr))
}

/// Binds a UDP socket on `addr`.
pub async fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

fn refused_or_io(peer: Option<SocketAddr>, e: io::Error, what: &str) -> Error {
    match peer {
        Some(addr) if e.kind() == io::ErrorKind::ConnectionRefused => Error::Connect {
            addr,
            source: io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "nothing listens there (ICMP port unreachable)",
            ),
        },
        _ => Error::Io {
            context: what.to_owned(),
            source: e,
        },
    }
}

/// Moves datagrams between `input`/`output` and `socket`.
///
/// `peer`: the address `socket` is connected to, or `None` for a listener, which takes the
/// first sender as its peer (and connects to it) unless `follow_senders`, where every datagram
/// is accepted and input lines go to whoever sent last. Input lines wait until there is a peer.
/// The session ends at [`Options::quit_after_eof`] (after the input ended and the peer was
/// quiet that long), with [`Error::Idle`] at [`Options::idle_timeout`], when the output closes,
/// or never (the caller stops it).
pub async fn session(
    socket: &UdpSocket,
    peer: Option<SocketAddr>,
    follow_senders: bool,
    input: &mut Input,
    output: &Output,
    opts: &Options,
) -> Result<Report> {
    let start = Instant::now();
    let last_ms = AtomicU64::new(0);
    let counts = [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ];
    let touch = || {
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        last_ms.store(ms, Ordering::Relaxed);
    };
    let (peer_tx, mut peer_rx) = watch::channel(peer);
    let connected = peer.is_some();

    let up = async {
        let mut lines = Lines::new(MAX_UDP_MESSAGE);
        loop {
            let more = input.fill().await.map_err(|source| Error::Io {
                context: "reading the input".into(),
                source,
            })?;
            let datagrams: Vec<Bytes> = if more {
                let chunk = input.pending().cloned().unwrap_or_default();
                input.consume();
                lines.push(&chunk)
            } else {
                lines.finish().into_iter().collect()
            };
            for d in datagrams {
                let to = match *peer_rx
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| Error::Io {
                        context: "waiting for a peer".into(),
                        source: io::Error::other("the receiving side stopped"),
                    })? {
                    Some(to) => to,
                    None => continue,
                };
                let r = if connected {
                    socket.send(&d).await
                } else {
                    socket.send_to(&d, to).await
                };
                r.map_err(|e| refused_or_io(Some(to), e, "sending a datagram"))?;
                counts[0].fetch_add(d.len() as u64, Ordering::Relaxed);
                counts[2].fetch_add(1, Ordering::Relaxed);
                touch();
            }
            if !more {
                touch();
                return Ok::<(), Error>(());
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 65_536];
        let mut locked = connected;
        loop {
            let (n, from) = if locked {
                let n = socket
                    .recv(&mut buf)
                    .await
                    .map_err(|e| refused_or_io(*peer_tx.borrow(), e, "receiving a datagram"))?;
                (n, None)
            } else {
                let (n, from) = socket
                    .recv_from(&mut buf)
                    .await
                    .map_err(|source| Error::Io {
                        context: "receiving a datagram".into(),
                        source,
                    })?;
                (n, Some(from))
            };
            if let Some(from) = from {
                if !follow_senders {
                    // the first sender is the peer from now on, as `nc -u -l`
                    socket
                        .connect(from)
                        .await
                        .map_err(|source| Error::Connect { addr: from, source })?;
                    locked = true;
                }
                peer_tx.send_replace(Some(from));
            }
            counts[1].fetch_add(n as u64, Ordering::Relaxed);
            counts[3].fetch_add(1, Ordering::Relaxed);
            touch();
            if output
                .write(Bytes::copy_from_slice(&buf[..n]))
                .await
                .is_err()
            {
                return Ok::<End, Error>(End::OutputClosed);
            }
        }
    };
    tokio::pin!(up, down);
    let mut up_done = false;
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
                r?;
                up_done = true;
            }
            r = &mut down => break r?,
            _ = tokio::time::sleep_until(sleep_until.into()), if wake.is_some() => {
                let now = Instant::now();
                let last = start + Duration::from_millis(last_ms.load(Ordering::Relaxed));
                if up_done && opts.quit_after_eof.is_some_and(|d| now >= last + d) {
                    break End::Quiet;
                }
                if let Some(after) = opts.idle_timeout && now >= last + after {
                    let peer = peer_tx
                        .borrow()
                        .map_or_else(|| "no peer yet".to_owned(), |p| format!("udp://{p}"));
                    return Err(Error::Idle { peer, after });
                }
            }
        }
    };
    Ok(Report {
        sent: counts[0].load(Ordering::Relaxed),
        received: counts[1].load(Ordering::Relaxed),
        datagrams: (
            counts[2].load(Ordering::Relaxed),
            counts[3].load(Ordering::Relaxed),
        ),
        end,
    })
}
