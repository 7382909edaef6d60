//! `opskit net echo serve|send`: the seeds' echo pair, concurrent and framed.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use opskit_net::echo::{self, EchoEvent, EchoOptions};

use super::parse_duration;
use super::transfer::resolve;
use crate::exit::{Failure, code};
use crate::failure;
use crate::output::plural;

#[derive(Debug, Subcommand)]
pub enum EchoCommand {
    /// Answer every message with itself, many clients at once, until Ctrl-C.
    Serve(ServeArgs),
    /// Send one message to an echo server and print the reply.
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`0.0.0.0:7007` to accept other hosts).
    #[arg(long, default_value = "127.0.0.1:7007")]
    bind: String,
    /// UDP: one datagram per message (default: TCP with length-prefixed messages).
    #[arg(long)]
    udp: bool,
    /// TCP connections served at once (more wait in the backlog).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Close a TCP connection idle for this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Print a line per connection (TCP) or datagram (UDP) on stderr.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Server address, `host:port` (IPv6 as `[addr]:port`).
    addr: String,
    /// The message.
    message: String,
    /// UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    /// Deadline for the connect and for the reply (per attempt with --udp).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// UDP: send at most this many times when no reply comes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
}

impl EchoCommand {
    pub fn run(self) -> anyhow::Result<u8> {
        match self {
            EchoCommand::Serve(a) => serve(a),
            EchoCommand::Send(a) => send(a),
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    crate::block_on(async move {
        let addr = resolve(&args.bind, Duration::from_secs(5)).await?;
        let events: Option<echo::EchoEvents> = args.verbose.then(|| {
            Arc::new(|e: EchoEvent| match e {
                EchoEvent::Closed {
                    peer,
                    messages,
                    error,
                } => match error {
                    Some(err) => eprintln!(
                        "{peer}: {}, closed: {err}",
                        plural(messages, "message", "messages")
                    ),
                    None => eprintln!("{peer}: {}", plural(messages, "message", "messages")),
                },
                EchoEvent::Datagram { peer, len } => {
                    eprintln!("{peer}: {}", plural(len as u64, "byte", "bytes"))
                }
            }) as echo::EchoEvents
        });
        let serving = if args.udp {
            let socket = echo::bind_udp(addr).await.map_err(failure::net)?;
            let local = socket.local_addr().unwrap_or(addr);
            eprintln!("echo server listening on udp://{local}");
            tokio::spawn(echo::serve_udp(socket, events))
        } else {
            let listener = echo::bind_tcp(addr).await.map_err(failure::net)?;
            let local = listener.local_addr().unwrap_or(addr);
            eprintln!("echo server listening on tcp://{local}");
            let options = EchoOptions {
                max_connections: args.max_connections as usize,
                idle_timeout: args.idle_timeout,
            };
            tokio::spawn(echo::serve_tcp(listener, options, events))
        };
        tokio::select! {
            r = serving => match r {
                Ok(Ok(())) => Ok(code::OK),
                Ok(Err(e)) => Err(failure::net(e)),
                Err(e) => Err(Failure::new(code::FAILURE, format!("the server task failed: {e}")).into()),
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped");
                Ok(code::OK)
            }
        }
    })?
}

fn send(args: SendArgs) -> anyhow::Result<u8> {
    crate::block_on(async move {
        let addr: SocketAddr = resolve(&args.addr, args.timeout).await?;
        let reply = if args.udp {
            echo::send_udp(addr, args.message.as_bytes(), args.timeout, args.attempts).await
        } else {
            echo::send_tcp(addr, args.message.as_bytes(), args.timeout).await
        }
        .map_err(failure::net)?;
        let mut out = crate::output::stdout();
        // the reply is the peer's bytes: on a terminal, escaped so it cannot drive it
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            out.write_all(crate::peer_text::line(&String::from_utf8_lossy(&reply)).as_bytes())?;
        } else {
            out.write_all(&reply)?;
        }
        out.write_all(b"\n")?;
        out.flush()?;
        if reply != args.message.as_bytes() {
            return Err(Failure::new(
                code::FAILURE,
                format!(
                    "the reply ({}) is not the message sent ({})",
                    plural(reply.len() as u64, "byte", "bytes"),
                    plural(args.message.len() as u64, "byte", "bytes")
                ),
            )
            .with_hint("is that an opskit echo server (TCP messages are length-prefixed)?")
            .into());
        }
        Ok(code::OK)
    })?
}
