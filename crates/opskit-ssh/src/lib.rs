//! `opskit-ssh`: run commands and move files on many hosts at once, with strict host-key
//! checking and an honest outcome per host.
//!
//! Built on russh (with `nodelay` on) and russh-sftp. Targets come from [`target`], host keys are
//! checked by our own [`known_hosts`] matcher, credentials are in [`auth`]. [`run_command`] and
//! the SFTP functions in [`sftp`] fan out over hosts with bounded concurrency and return one
//! [`HostReport`] per host. Nothing here prints: output lines and progress arrive as [`Event`]s.

pub mod auth;
mod error;
pub mod hosts_file;
pub mod known_hosts;
mod outcome;
mod run;
mod session;
pub mod sftp;
pub mod target;

pub use auth::{Credentials, Identity, load_identity};
pub use error::Error;
pub use hosts_file::HostsFile;
pub use outcome::{Event, EventSink, HostKeyInfo, HostReport, Outcome, Phase, RemoteEntry, Stream};
pub use run::{
    FanOut, MAX_CAPTURE, RunOptions, fan_out, run_command, run_command_with, run_one, run_one_with,
};
pub use session::{ConnectOptions, HostKeyPolicy, load_policy};
pub use target::{SshConfig, Target, TargetDefaults};
