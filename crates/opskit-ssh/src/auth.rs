//! Credentials: key files (ed25519, ECDSA, RSA, with passphrase), password, ssh-agent.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PrivateKey;
use secrecy::{ExposeSecret, SecretString};

use crate::Error;

/// A private key loaded from a file.
#[derive(Clone)]
pub struct Identity {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("path", &self.path)
            .field("algorithm", &self.key.algorithm().as_str())
            .finish_non_exhaustive()
    }
}

/// What to try, in this order: ssh-agent, key files, password.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Try the keys held by the agent at `SSH_AUTH_SOCK` (path), when set.
    pub agent_socket: Option<PathBuf>,
    pub identities: Vec<Identity>,
    pub password: Option<SecretString>,
}

/// True when the key file is encrypted (needs a passphrase).
pub fn key_is_encrypted(path: &Path) -> Result<bool, Error> {
    match load_identity(path, None) {
        Ok(_) => Ok(false),
        Err(Error::KeyEncrypted { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Loads a private key file (OpenSSH, PKCS#8 or PEM), decrypting it with `passphrase`.
pub fn load_identity(path: &Path, passphrase: Option<&SecretString>) -> Result<Identity, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    match russh::keys::decode_secret_key(&text, passphrase.map(|p| p.expose_secret())) {
        Ok(key) => Ok(Identity {
            path: path.to_path_buf(),
            key: Arc::new(key),
        }),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(Error::KeyEncrypted {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(Error::Key {
            path: path.to_path_buf(),
            reason: if passphrase.is_some() {
                format!("{e} (wrong passphrase?)")
            } else {
                e.to_string()
            },
        }),
    }
}

/// The default key files that exist: `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
pub fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = dirs::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .filter(|p| p.is_file())
        .collect()
}
