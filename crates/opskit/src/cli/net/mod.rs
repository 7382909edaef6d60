//! `opskit net …`: sockets without surprises.

use clap::Subcommand;

pub mod echo;
pub mod transfer;

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Echo server and client, TCP (framed messages) or UDP (one datagram per message).
    #[command(subcommand)]
    Echo(echo::EchoCommand),
    /// Send files to an `opskit net receive` (checksummed, verified by the receiver).
    Send(transfer::SendArgs),
    /// Receive files from `opskit net send` into a directory.
    Receive(transfer::ReceiveArgs),
}

impl NetCommand {
    pub fn run(self) -> anyhow::Result<u8> {
        match self {
            NetCommand::Echo(cmd) => cmd.run(),
            NetCommand::Send(args) => transfer::send(args),
            NetCommand::Receive(args) => transfer::receive(args),
        }
    }
}
