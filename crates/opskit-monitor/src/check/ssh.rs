//! `kind = "ssh"`: runs a command through opskit-ssh with strict host-key checking; the exit
//! status and output are in the result (`.exit_code`, `.stdout`, `.stderr`).

use std::sync::Arc;
use std::time::Duration;

use opskit_ssh::{ConnectOptions, Credentials, Outcome, Target};
use serde_json::json;

use super::Raw;
use crate::config::SshCheck;

pub(crate) async fn check(s: &SshCheck, timeout: Duration) -> Raw {
    match run(s, timeout).await {
        Ok(r) => r,
        Err(e) => Raw::err(json!({}), e),
    }
}

async fn run(s: &SshCheck, timeout: Duration) -> Result<Raw, String> {
    let (user, host, port) =
        opskit_ssh::target::parse_spec(&s.target).map_err(|e| e.to_string())?;
    let user = user
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    let target = Target {
        label: s.target.clone(),
        host,
        port: port.unwrap_or(22),
        user,
        identity_files: Vec::new(),
        ignored_directives: Vec::new(),
        jump: Vec::new(),
    };
    let mut credentials = Credentials {
        agent_socket: std::env::var_os("SSH_AUTH_SOCK").map(Into::into),
        ..Credentials::default()
    };
    match &s.identity {
        Some(p) => credentials
            .identities
            .push(opskit_ssh::load_identity(p, None).map_err(|e| e.to_string())?),
        // The default key files that load without a passphrase.
        None => credentials.identities.extend(
            opskit_ssh::auth::default_identity_files()
                .iter()
                .filter_map(|p| opskit_ssh::load_identity(p, None).ok()),
        ),
    }
    if let Some(pw) = &s.password {
        credentials.password = Some(pw.resolve().await.map_err(|e| format!("password: {e}"))?);
    }
    let policy =
        opskit_ssh::load_policy(s.known_hosts.clone(), false).map_err(|e| e.to_string())?;
    let opts = ConnectOptions {
        connect_timeout: timeout,
        timeout,
        host_keys: Arc::new(policy),
        credentials: Arc::new(credentials),
    };
    let report = opskit_ssh::run_one(0, &target, &s.command, &opts, None).await;
    let stdout = String::from_utf8_lossy(&report.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&report.stderr).into_owned();
    let object = json!({
        "outcome": report.outcome.status(),
        "exit_code": report.outcome.exit_code(),
        "stdout": stdout,
        "stderr": stderr,
        "response_time_ms": (report.duration.as_secs_f64() * 10000.0).round() / 10.0,
    });
    match report.outcome {
        Outcome::Ok | Outcome::Failed { exit_code: Some(_) } => Ok(Raw::ok(object)),
        other => {
            let why = report.message.unwrap_or_else(|| other.to_string());
            Ok(Raw::err(object, format!("ssh {}: {why}", s.target)))
        }
    }
}
