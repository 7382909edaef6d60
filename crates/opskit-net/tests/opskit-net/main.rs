//! Integration tests of opskit-net: real sockets on loopback only.

mod support;

mod check;
mod dns;
mod echo;
mod scan;
mod transfer;
mod wait;
