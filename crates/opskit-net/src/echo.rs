//! An echo server and client, TCP (length-delimited frames) or UDP (one datagram per message).
//!
//! Over TCP every message travels as one frame: a 4-byte big-endian length, then that many bytes
//! (tokio-util's [`LengthDelimitedCodec`]). The server answers each frame with the same frame, so a
//! message is never cut by a partial read nor glued to the next one, whatever the sender's write
//! sizes. Over UDP a message is one datagram and the reply is the same datagram.
//!
//! The server runs one task per TCP connection, at most [`EchoOptions::max_connections`] at once
//! (more wait in the listen backlog); a connection idle longer than [`EchoOptions::idle_timeout`]
//! is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::{Error, Result};

/// Largest TCP message (frame payload) the server and client accept.
pub const MAX_TCP_MESSAGE: usize = 1024 * 1024;
/// Largest UDP message: the biggest payload of an IPv4 UDP datagram.
pub const MAX_UDP_MESSAGE: usize = 65_507;

/// Server settings.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    /// TCP connections served at once; further connections wait until one ends.
    pub max_connections: usize,
    /// A TCP connection with no complete message for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for EchoOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Something the server did, for the caller to log.
#[derive(Debug, Clone)]
pub enum EchoEvent {
    /// A TCP connection ended; `messages` frames were echoed.
    Closed {
        peer: SocketAddr,
        messages: u64,
        /// Why it ended abnormally (idle timeout, oversized frame, reset), if it did.
        error: Option<String>,
    },
    /// A UDP datagram was echoed.
    Datagram { peer: SocketAddr, len: usize },
}

/// Callback receiving [`EchoEvent`]s.
pub type EchoEvents = Arc<dyn Fn(EchoEvent) + Send + Sync>;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(MAX_TCP_MESSAGE)
        .new_codec()
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Binds a TCP echo listener on `addr` (use port 0 for a free port; read it with `local_addr`).
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Binds a UDP echo socket on `addr`.
pub async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves TCP echo on `listener` until the future is dropped (or accepting fails fatally).
pub async fn serve_tcp(
    listener: TcpListener,
    options: EchoOptions,
    events: Option<EchoEvents>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    loop {
        // Wait for a free slot before accepting, so the backlog holds the excess connections.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) if is_transient_accept_error(&e) => {
                // Out of file descriptors or a connection reset before accept: back off briefly.
                tracing::warn!(error = %e, "accept failed, retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(io("accepting an echo connection")(e)),
        };
        let idle = options.idle_timeout;
        let events = events.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (messages, error) = echo_connection(stream, idle).await;
            if let Some(ev) = events {
                ev(EchoEvent::Closed {
                    peer,
                    messages,
                    error,
                });
            }
        });
    }
}

fn is_transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE
        || e.raw_os_error() == Some(23) // ENFILE
}

async fn echo_connection(stream: TcpStream, idle: Duration) -> (u64, Option<String>) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec());
    let mut messages = 0u64;
    loop {
        let frame = match tokio::time::timeout(idle, framed.next()).await {
            Err(_) => return (messages, Some(format!("idle for {idle:?}"))),
            Ok(None) => return (messages, None),
            Ok(Some(Err(e))) => return (messages, Some(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        match tokio::time::timeout(idle, framed.send(frame.freeze())).await {
            Err(_) => return (messages, Some(format!("reply not taken for {idle:?}"))),
            Ok(Err(e)) => return (messages, Some(e.to_string())),
            Ok(Ok(())) => messages += 1,
        }
    }
}

/// Serves UDP echo on `socket`: every datagram is sent back to its sender as it is.
pub async fn serve_udp(socket: UdpSocket, events: Option<EchoEvents>) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(v) => v,
            // ICMP errors from earlier replies surface as errors on Linux/Windows: keep serving.
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        if let Err(e) = socket.send_to(&buf[..len], peer).await {
            tracing::debug!(error = %e, %peer, "udp reply failed");
            continue;
        }
        if let Some(ev) = &events {
            ev(EchoEvent::Datagram { peer, len });
        }
    }
}

/// Sends `message` to a TCP echo server at `addr` and returns the reply, within `timeout` for
/// the connect and again for the round trip.
pub async fn send_tcp(addr: SocketAddr, message: &[u8], timeout: Duration) -> Result<Bytes> {
    if message.len() > MAX_TCP_MESSAGE {
        return Err(Error::MessageTooLarge {
            len: message.len(),
            max: MAX_TCP_MESSAGE,
        });
    }
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout {
            what: format!("connecting to {addr}"),
            after: timeout,
        })?
        .map_err(|source| Error::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec());
    let round_trip = async {
        framed
            .send(Bytes::copy_from_slice(message))
            .await
            .map_err(io(format!("sending to {addr}")))?;
        match framed.next().await {
            Some(Ok(reply)) => Ok(reply.freeze()),
            Some(Err(e)) => Err(io(format!("reading the reply from {addr}"))(e)),
            None => Err(Error::Protocol(format!(
                "{addr} closed the connection without replying"
            ))),
        }
    };
    tokio::time::timeout(timeout, round_trip)
        .await
        .map_err(|_| Error::Timeout {
            what: format!("waiting for the echo from {addr}"),
            after: timeout,
        })?
}

/// Sends `message` as one UDP datagram to `addr` and waits up to `timeout` for the reply.
/// UDP may lose the datagram: it is sent `attempts` times at most (each with its own wait).
pub async fn send_udp(
    addr: SocketAddr,
    message: &[u8],
    timeout: Duration,
    attempts: u32,
) -> Result<Bytes> {
    if message.len() > MAX_UDP_MESSAGE {
        return Err(Error::MessageTooLarge {
            len: message.len(),
            max: MAX_UDP_MESSAGE,
        });
    }
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|source| Error::Bind {
        addr: local,
        source,
    })?;
    socket
        .connect(addr)
        .await
        .map_err(|source| Error::Connect { addr, source })?;
    let mut buf = vec![0u8; 65_536];
    let attempts = attempts.max(1);
    for _ in 0..attempts {
        socket
            .send(message)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
            Err(_) => continue,
            // A closed UDP port answers with ICMP "port unreachable": ECONNREFUSED here.
            Ok(Err(source)) => return Err(Error::Connect { addr, source }),
            Ok(Ok(n)) => return Ok(Bytes::copy_from_slice(&buf[..n])),
        }
    }
    Err(Error::Timeout {
        what: format!(
            "waiting for the UDP echo from {addr} ({attempts} {})",
            if attempts == 1 { "attempt" } else { "attempts" }
        ),
        after: timeout,
    })
}
