//! Raw bytes between an input/output pair (stdin and stdout in `opskit net connect|listen`) and
//! a TCP, Unix or UDP socket, as `nc` moves them — with deadlines and typed ends.
//!
//! - The input is read and the output written on threads of their own ([`Input`], [`Output`]),
//!   so a blocked terminal read never holds the runtime (nor its shutdown) and a slow consumer
//!   only slows the socket it reads from; the socket side is tokio with large buffers.
//! - A stream session ([`stream::pump`]) ends when both directions have ended: the input's end
//!   is passed on as a half-close (`shutdown(Write)`, as `nc -N`) and the peer's bytes are read
//!   until it closes. [`Options`] change that: no half-close, end at the peer's close, quit once
//!   the peer has been quiet after the input ended (`-q`), an idle deadline (`-w`).
//! - UDP ([`udp`]): every input line is one datagram; received datagrams are written as they
//!   come.
//!
//! Like every opskit library this module never prints: the caller gets a [`Report`] or an
//! [`Error`](crate::Error).

use std::io::{self, Read, Write};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub mod stream;
pub mod udp;

/// Bytes read from or written to the socket at once.
pub const BUFFER_SIZE: usize = 256 * 1024;

/// How a session runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Close with [`Error::Idle`](crate::Error::Idle) when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// Once the input has ended, end the session when the peer has sent nothing for this long
    /// (`Duration::ZERO`: at once). `None`: wait for the peer to close (TCP, Unix) or forever
    /// (UDP).
    pub quit_after_eof: Option<Duration>,
    /// Pass the input's end on to the peer as a half-close (TCP, Unix).
    pub half_close: bool,
    /// End the session as soon as the peer closes, even if the input goes on (a terminal, or a
    /// listener taking connection after connection).
    pub end_on_peer_close: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idle_timeout: None,
            quit_after_eof: None,
            half_close: true,
            end_on_peer_close: false,
        }
    }
}

/// Why a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both directions ended: the input was sent and the peer closed.
    Done,
    /// The peer closed and [`Options::end_on_peer_close`] was set.
    PeerClosed,
    /// The input ended and the peer was quiet for [`Options::quit_after_eof`].
    Quiet,
    /// The output was closed (a reader such as `head` went away): nothing more can be shown.
    OutputClosed,
}

/// What a session moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Bytes sent to the peer.
    pub sent: u64,
    /// Bytes received from the peer.
    pub received: u64,
    /// Datagrams sent and received (UDP only).
    pub datagrams: (u64, u64),
    pub end: End,
}

/// A byte source read on a thread of its own, in chunks, through a bounded channel.
///
/// A chunk stays [`pending`](Input::pending) until [`consume`](Input::consume)d, so a session
/// that ends while sending it leaves it for the next one (a listener with `--keep-open`).
#[derive(Debug)]
pub struct Input {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    pending: Option<Bytes>,
    ended: bool,
}

impl Input {
    /// Starts reading `reader` on a new thread, at most `chunk` bytes per read. The thread stops
    /// at the end of the input, at an error, or when the [`Input`] is dropped (after its current
    /// read returns).
    pub fn spawn<R: Read + Send + 'static>(mut reader: R, chunk: usize) -> io::Result<Input> {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
        let chunk = chunk.max(1);
        std::thread::Builder::new()
            .name("opskit-input".into())
            .spawn(move || {
                let mut buf = vec![0u8; chunk];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tx
                                .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            break;
                        }
                    }
                }
            })?;
        Ok(Input {
            rx,
            pending: None,
            ended: false,
        })
    }

    /// Waits for a chunk to be pending; `Ok(false)` at the end of the input.
    pub async fn fill(&mut self) -> io::Result<bool> {
        if self.pending.is_some() {
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        match self.rx.recv().await {
            Some(Ok(b)) => {
                self.pending = Some(b);
                Ok(true)
            }
            Some(Err(e)) => {
                self.ended = true;
                Err(e)
            }
            None => {
                self.ended = true;
                Ok(false)
            }
        }
    }

    /// The chunk waiting to be sent, if any.
    pub fn pending(&self) -> Option<&Bytes> {
        self.pending.as_ref()
    }

    /// Marks the pending chunk sent.
    pub fn consume(&mut self) {
        self.pending = None;
    }

    /// Whether the input has ended and nothing is pending.
    pub fn is_done(&self) -> bool {
        self.ended && self.pending.is_none()
    }
}

/// The output was closed or failed; [`Output::finish`] tells which.
#[derive(Debug, Clone, Copy)]
pub struct OutputClosed;

/// A byte sink written on a thread of its own through a bounded channel.
#[derive(Debug)]
pub struct Output {
    tx: Option<mpsc::Sender<Bytes>>,
    done: Option<oneshot::Receiver<io::Result<()>>>,
}

impl Output {
    /// Starts a thread writing everything sent to `writer` (flushed at the end).
    pub fn spawn<W: Write + Send + 'static>(mut writer: W) -> io::Result<Output> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("opskit-output".into())
            .spawn(move || {
                let mut result = Ok(());
                while let Some(chunk) = rx.blocking_recv() {
                    if let Err(e) = writer.write_all(&chunk) {
                        result = Err(e);
                        break;
                    }
                }
                if result.is_ok() {
                    result = writer.flush();
                }
                // senders learn at once that nothing more is written
                drop(rx);
                let _ = done_tx.send(result);
            })?;
        Ok(Output {
            tx: Some(tx),
            done: Some(done_rx),
        })
    }

    /// Queues `chunk`; waits while the writer is behind.
    pub async fn write(&self, chunk: Bytes) -> Result<(), OutputClosed> {
        match &self.tx {
            Some(tx) => tx.send(chunk).await.map_err(|_| OutputClosed),
            None => Err(OutputClosed),
        }
    }

    /// Waits until everything queued is written and returns the writer's error, if any (a
    /// closed pipe is [`io::ErrorKind::BrokenPipe`]).
    pub async fn finish(&mut self) -> io::Result<()> {
        self.tx = None;
        match self.done.take() {
            Some(done) => done.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

/// Splits input chunks into datagrams: one per line (its `\n` kept), a line longer than `max`
/// cut into `max`-byte pieces, and what is left at the end of the input as the last one.
#[derive(Debug)]
pub struct Lines {
    buf: bytes::BytesMut,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Lines {
        Lines {
            buf: bytes::BytesMut::new(),
            max: max.max(1),
        }
    }

    /// Adds `chunk` and returns the datagrams it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            let cut = match self.buf.iter().take(self.max).position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if self.buf.len() >= self.max => self.max,
                None => break,
            };
            out.push(self.buf.split_to(cut).freeze());
        }
        out
    }

    /// What is left (a last line without its `\n`), at the end of the input.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_make_one_datagram_each_and_cut_long_ones() {
        let mut l = Lines::new(4);
        assert_eq!(l.push(b"ab\ncd"), vec![Bytes::from_static(b"ab\n")]);
        assert_eq!(
            l.push(b"efgh\n"),
            vec![Bytes::from_static(b"cdef"), Bytes::from_static(b"gh\n")]
        );
        assert_eq!(l.push(b"x"), Vec::<Bytes>::new());
        assert_eq!(l.finish(), Some(Bytes::from_static(b"x")));
        assert_eq!(l.finish(), None);
    }
}
