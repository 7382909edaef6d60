//! Integration tests of opskit-net: real sockets on loopback only.

mod echo;
mod transfer;
