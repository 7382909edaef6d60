//! Integration tests of opskit-ssh: against Debian's OpenSSH sshd (started by
//! `scripts/services/sshd.sh`) and against an in-process russh server for what sshd will not do
//! on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common;
mod in_process;
mod known_hosts;
mod sftp;
mod sshd;
