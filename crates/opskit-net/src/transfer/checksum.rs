//! The checksums a transfer can carry: BLAKE3 (the default, several times faster than SHA-256
//! on one core) and SHA-256 (for people who compare with `sha256sum`).

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A checksum algorithm of the wire format (the header's `algorithm` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// BLAKE3, 32-byte output (code 1).
    #[default]
    Blake3,
    /// SHA-256 (code 2): the digest `sha256sum` prints.
    Sha256,
}

impl Checksum {
    /// The algorithm byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            Checksum::Blake3 => 1,
            Checksum::Sha256 => 2,
        }
    }

    /// The algorithm for a byte from the wire, if this version knows it.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Checksum::Blake3),
            2 => Some(Checksum::Sha256),
            _ => None,
        }
    }

    /// The name users type and reports show: `blake3` or `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Checksum::Blake3 => "blake3",
            Checksum::Sha256 => "sha256",
        }
    }

    /// A fresh hasher of this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Checksum::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            Checksum::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Checksum {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "blake3" => Ok(Checksum::Blake3),
            "sha256" | "sha-256" => Ok(Checksum::Sha256),
            _ => Err(format!("unknown checksum {s:?} (valid: blake3, sha256)")),
        }
    }
}

/// A running digest of either algorithm; [`Hasher::digest`] does not end it, so the digest of
/// a prefix can be taken and hashing go on.
#[derive(Clone)]
pub enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The digest of everything hashed so far.
    pub fn digest(&self) -> [u8; 32] {
        match self {
            Hasher::Blake3(h) => *h.finalize().as_bytes(),
            Hasher::Sha256(h) => h.clone().finalize().into(),
        }
    }

    pub fn algorithm(&self) -> Checksum {
        match self {
            Hasher::Blake3(_) => Checksum::Blake3,
            Hasher::Sha256(_) => Checksum::Sha256,
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}
