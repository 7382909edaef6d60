//! One SSH connection: connect with a deadline, check the host key, authenticate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::Error;
use crate::auth::Credentials;
use crate::known_hosts::{KnownHosts, Verdict, fingerprint};
use crate::outcome::{HostKeyInfo, HostReport, Outcome, Phase};
use crate::target::Target;

/// Host-key policy shared by every connection of a run.
#[derive(Debug)]
pub struct HostKeyPolicy {
    known_hosts: Mutex<KnownHosts>,
    accept_new: bool,
}

impl HostKeyPolicy {
    /// Strict checking against `known_hosts`; with `accept_new`, unknown keys are recorded.
    pub fn new(known_hosts: KnownHosts, accept_new: bool) -> Self {
        Self {
            known_hosts: Mutex::new(known_hosts),
            accept_new,
        }
    }

    /// `~/.ssh/known_hosts`.
    pub fn default_path() -> PathBuf {
        dirs::home_dir()
            .unwrap_or_default()
            .join(".ssh")
            .join("known_hosts")
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Limit for TCP connect + SSH handshake + host-key check.
    pub connect_timeout: Duration,
    /// Whole per-host deadline (connect, auth and the command or transfer).
    pub timeout: Duration,
    pub host_keys: Arc<HostKeyPolicy>,
    pub credentials: Arc<Credentials>,
}

pub struct Client {
    host: String,
    port: u16,
    policy: Arc<HostKeyPolicy>,
    seen: Arc<std::sync::Mutex<Option<(Verdict, HostKeyInfo)>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let mut kh = self.policy.known_hosts.lock().await;
        let (verdict, key_type, fp, plain) = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (
                kh.check(&self.host, self.port, key),
                key.algorithm().as_str().to_string(),
                fingerprint(key),
                Some(key.clone()),
            ),
            PublicKeyOrCertificate::Certificate(cert) => (
                kh.check_certificate(&self.host, self.port, cert),
                cert.algorithm().as_str().to_string(),
                cert.public_key()
                    .fingerprint(russh::keys::HashAlg::Sha256)
                    .to_string(),
                None,
            ),
        };
        let mut info = HostKeyInfo {
            key_type,
            fingerprint: fp,
            known_at: match &verdict {
                Verdict::Changed { path, line } | Verdict::Revoked { path, line } => {
                    Some(format!("{}:{line}", path.display()))
                }
                _ => None,
            },
            added: false,
        };
        let mut accepted = verdict == Verdict::Trusted;
        let mut verdict = verdict;
        if let (Verdict::Unknown { .. }, true, Some(k)) = (&verdict, self.policy.accept_new, &plain)
        {
            match kh.add(&self.host, self.port, k) {
                Ok(()) => {
                    info.added = true;
                    accepted = true;
                    verdict = Verdict::Trusted;
                }
                Err(e) => tracing::warn!("cannot record host key: {e}"),
            }
        }
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((verdict, info));
        }
        Ok(accepted)
    }
}

/// An authenticated connection (through its jump hosts, kept open while it lives).
pub(crate) struct Connection {
    pub handle: Handle<Client>,
    /// The jump hosts' sessions, first hop first; each carries the next one's TCP stream.
    pub jumps: Vec<Handle<Client>>,
}

impl Connection {
    /// Says goodbye to the target, then to each jump host, last hop first (each within `limit`).
    pub async fn disconnect(self, limit: Duration) {
        let _ = tokio::time::timeout(
            limit,
            self.handle
                .disconnect(russh::Disconnect::ByApplication, "", "en"),
        )
        .await;
        for hop in self.jumps.iter().rev() {
            let _ = tokio::time::timeout(
                limit,
                hop.disconnect(russh::Disconnect::ByApplication, "", "en"),
            )
            .await;
        }
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Connects and authenticates, through the target's jump hosts when it has any (each hop with
/// its own connect deadline and the same host-key policy); on failure fills `report` (naming
/// the hop that failed) and returns `None`.
pub(crate) async fn connect(
    target: &Target,
    opts: &ConnectOptions,
    deadline: Instant,
    report: &mut HostReport,
) -> Option<Connection> {
    let hops = target.jump.len();
    let mut jumps: Vec<Handle<Client>> = Vec::with_capacity(hops);
    for (i, hop) in target
        .jump
        .iter()
        .chain(std::iter::once(target))
        .enumerate()
    {
        let handle = match jumps.last() {
            None => {
                let addr = (hop.host.clone(), hop.port);
                handshake(
                    hop,
                    async move {
                        let stream = tokio::net::TcpStream::connect(addr)
                            .await
                            .map_err(|e| (true, e.to_string()))?;
                        let _ = stream.set_nodelay(true);
                        Ok(stream)
                    },
                    opts,
                    deadline,
                    report,
                )
                .await
            }
            Some(via) => {
                let open = via.channel_open_direct_tcpip(
                    hop.host.clone(),
                    u32::from(hop.port),
                    "127.0.0.1",
                    0,
                );
                let via_label = target
                    .jump
                    .get(i.wrapping_sub(1))
                    .map_or_else(String::new, |j| j.label.clone());
                handshake(
                    hop,
                    async move {
                        open.await.map(russh::Channel::into_stream).map_err(|e| {
                            (
                                true,
                                format!("jump host {via_label} could not open a connection to {}:{}: {e}", hop.host, hop.port),
                            )
                        })
                    },
                    opts,
                    deadline,
                    report,
                )
                .await
            }
        };
        let Some(handle) = handle else {
            if i < hops {
                let why = report.message.take().unwrap_or_default();
                report.message = Some(format!(
                    "jump host {} ({}:{}, hop {} of {hops}): {why}",
                    hop.label,
                    hop.host,
                    hop.port,
                    i + 1
                ));
            } else if hops > 0
                && let Some(m) = report.message.take()
            {
                report.message = Some(format!("{m} (through {})", chain_label(target)));
            }
            for j in jumps.iter().rev() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    j.disconnect(russh::Disconnect::ByApplication, "", "en"),
                )
                .await;
            }
            return None;
        };
        jumps.push(handle);
    }
    let handle = jumps.pop()?;
    Some(Connection { handle, jumps })
}

/// `a -> b` for the jump hosts of `target`.
fn chain_label(target: &Target) -> String {
    target
        .jump
        .iter()
        .map(|j| j.label.as_str())
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// One SSH session over `stream` (opened within the connect deadline): handshake, host-key check
/// and authentication as `target`.
async fn handshake<S, F>(
    target: &Target,
    stream: F,
    opts: &ConnectOptions,
    deadline: Instant,
    report: &mut HostReport,
) -> Option<Handle<Client>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: std::future::Future<Output = Result<S, (bool, String)>> + Send,
{
    let seen = Arc::new(std::sync::Mutex::new(None));
    let handler = Client {
        host: target.host.clone(),
        port: target.port,
        policy: opts.host_keys.clone(),
        seen: seen.clone(),
    };
    let mut preferred = russh::Preferred::default();
    if opts
        .host_keys
        .known_hosts
        .lock()
        .await
        .has_cert_authority_for(&target.host, target.port)
    {
        // Like OpenSSH: ask for host certificates only when a CA is trusted for this host.
        use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
        preferred.host_key_certificates = std::borrow::Cow::Owned(vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP384,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ]);
    }
    let config = Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        preferred,
        ..Default::default()
    });
    let connect_limit = opts.connect_timeout.min(remaining(deadline));
    let fut = async move {
        let stream = stream.await?;
        client::connect_stream(config, stream, handler)
            .await
            .map_err(|e| (false, e.to_string()))
    };
    let result = tokio::time::timeout(connect_limit, fut).await;
    let seen_key = seen.lock().ok().and_then(|mut s| s.take());
    if let Some((_, info)) = &seen_key {
        report.host_key = Some(info.clone());
    }
    let mut handle = match result {
        Err(_) => {
            report.outcome = Outcome::Timeout {
                phase: Phase::Connect,
            };
            report.message = Some(format!(
                "no SSH handshake with {}:{} within {:?}",
                target.host, target.port, connect_limit
            ));
            return None;
        }
        Ok(Err((tcp, msg))) => {
            match seen_key {
                Some((Verdict::Unknown { other_types }, info)) => {
                    report.outcome = Outcome::HostkeyUnknown;
                    let mut m = format!(
                        "host key for {} is not known: {} {}; check the fingerprint with the host's owner, then re-run with --accept-new (or add it with `ssh-keyscan -p {} {} >> ~/.ssh/known_hosts`)",
                        crate::known_hosts::host_key_name(&target.host, target.port),
                        info.key_type,
                        info.fingerprint,
                        target.port,
                        target.host
                    );
                    if !other_types.is_empty() {
                        m.push_str(&format!(
                            "; known_hosts lists other key types for it: {}",
                            other_types.join(", ")
                        ));
                    }
                    report.message = Some(m);
                }
                Some((Verdict::Changed { path, line }, info)) => {
                    report.outcome = Outcome::HostkeyChanged;
                    report.message = Some(format!(
                        "HOST KEY CHANGED for {}: now {} {}, but {}:{line} holds a different key; someone may be intercepting the connection. If the change is expected, delete line {line} of {} and reconnect with --accept-new",
                        crate::known_hosts::host_key_name(&target.host, target.port),
                        info.key_type,
                        info.fingerprint,
                        path.display(),
                        path.display()
                    ));
                }
                Some((Verdict::Revoked { path, line }, info)) => {
                    report.outcome = Outcome::HostkeyChanged;
                    report.message = Some(format!(
                        "host key {} {} is marked @revoked at {}:{line}",
                        info.key_type,
                        info.fingerprint,
                        path.display()
                    ));
                }
                _ => {
                    report.outcome = Outcome::Unreachable;
                    report.message = Some(if tcp && msg.starts_with("jump host ") {
                        msg
                    } else if tcp {
                        format!("cannot connect to {}:{}: {msg}", target.host, target.port)
                    } else {
                        format!(
                            "SSH handshake with {}:{} failed: {msg}",
                            target.host, target.port
                        )
                    });
                }
            }
            return None;
        }
        Ok(Ok(h)) => h,
    };
    let auth_limit = remaining(deadline);
    match tokio::time::timeout(
        auth_limit,
        authenticate(&mut handle, target, &opts.credentials),
    )
    .await
    {
        Err(_) => {
            report.outcome = Outcome::Timeout { phase: Phase::Auth };
            report.message = Some(format!(
                "authentication did not finish within {auth_limit:?}"
            ));
            None
        }
        Ok(Ok(())) => Some(handle),
        Ok(Err(msg)) => {
            report.outcome = Outcome::AuthFailed;
            report.message = Some(msg);
            None
        }
    }
}

async fn authenticate(
    handle: &mut Handle<Client>,
    target: &Target,
    creds: &Credentials,
) -> Result<(), String> {
    let user = target.user.as_str();
    let mut tried = Vec::new();
    if let Some(sock) = &creds.agent_socket {
        match AgentClient::connect_uds(sock).await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                for id in ids {
                    let AgentIdentity::PublicKey { key, .. } = id else {
                        continue;
                    };
                    let hash = if key.algorithm().is_rsa() {
                        handle
                            .best_supported_rsa_hash()
                            .await
                            .ok()
                            .flatten()
                            .flatten()
                    } else {
                        None
                    };
                    match handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => {}
                        Err(e) => tracing::debug!("agent signing failed: {e}"),
                    }
                }
                tried.push("ssh-agent");
            }
            Err(e) => tracing::debug!("cannot use ssh-agent at {}: {e}", sock.display()),
        }
    }
    for id in &creds.identities {
        let hash = if id.key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten()
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(id.key.clone(), hash);
        match handle.authenticate_publickey(user, key).await {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("connection lost during authentication: {e}")),
        }
        tried.push("key");
    }
    if let Some(pw) = &creds.password {
        match handle
            .authenticate_password(user, pw.expose_secret().to_string())
            .await
        {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("connection lost during authentication: {e}")),
        }
        tried.push("password");
    }
    if tried.is_empty() {
        return Err(format!(
            "no credentials to offer as {user}: give -i KEY, --password, or run an ssh-agent"
        ));
    }
    tried.dedup();
    Err(format!(
        "{user}@{} refused every method tried ({})",
        target.host,
        tried.join(", ")
    ))
}

/// Loads the known_hosts file for a policy.
pub fn load_policy(path: Option<PathBuf>, accept_new: bool) -> Result<HostKeyPolicy, Error> {
    let path = path.unwrap_or_else(HostKeyPolicy::default_path);
    Ok(HostKeyPolicy::new(KnownHosts::load(path)?, accept_new))
}
