//! Integration tests of opskit-net: real sockets on loopback only.

mod support;

mod check;
mod dns;
mod scan;
mod wait;
mod echo;
mod transfer;
