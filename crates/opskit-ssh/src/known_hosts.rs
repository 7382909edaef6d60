//! Our own OpenSSH `known_hosts` matcher, on the `ssh-key` types russh re-exports.
//!
//! Supports hashed names (`|1|salt|hash`), `[host]:port`, `*` and `?` wildcards, `!negation`,
//! `@revoked` and `@cert-authority` lines. Strict by default: an unknown key is refused, a changed
//! key is refused with the file and line of the key we expected, a revoked key is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};
use sha1::{Digest, Sha1};

use crate::Error;

/// One parsed line of a known_hosts file.
#[derive(Debug, Clone)]
struct Line {
    number: usize,
    entry: Entry,
}

/// What the known_hosts file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key (or a certificate signed by a trusted `@cert-authority`) is listed for this host.
    Trusted,
    /// No key is listed for this host (`other_types` lists key types that are listed).
    Unknown { other_types: Vec<String> },
    /// A different key of the same type is listed for this host, at `path:line`.
    Changed { path: PathBuf, line: usize },
    /// The key is marked `@revoked` at `path:line`.
    Revoked { path: PathBuf, line: usize },
}

/// A loaded known_hosts file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    lines: Vec<Line>,
    /// Lines that could not be parsed (line number, reason); OpenSSH skips them too.
    skipped: Vec<(usize, String)>,
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
pub fn host_key_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:…` fingerprint of a key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl KnownHosts {
    /// Loads `path`; a missing file is an empty list.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        Ok(Self::parse(path, &text))
    }

    /// Parses known_hosts text that came from `path`.
    pub fn parse(path: PathBuf, text: &str) -> Self {
        let mut lines = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let normalised = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
            match normalised.parse::<Entry>() {
                Ok(entry) => lines.push(Line {
                    number: i + 1,
                    entry,
                }),
                Err(e) => skipped.push((i + 1, e.to_string())),
            }
        }
        Self {
            path,
            lines,
            skipped,
        }
    }

    /// The file this list came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines that could not be parsed, with the reason.
    pub fn skipped(&self) -> &[(usize, String)] {
        &self.skipped
    }

    /// Checks a host's plain public key.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_key_name(host, port);
        let matching: Vec<&Line> = self
            .lines
            .iter()
            .filter(|l| patterns_match(l.entry.host_patterns(), &name))
            .collect();
        // A revoked key is refused whatever else is listed.
        if let Some(l) = self.lines.iter().find(|l| {
            l.entry.marker() == Some(&Marker::Revoked)
                && l.entry.public_key().key_data() == key.key_data()
        }) {
            return Verdict::Revoked {
                path: self.path.clone(),
                line: l.number,
            };
        }
        let plain: Vec<&&Line> = matching
            .iter()
            .filter(|l| l.entry.marker().is_none())
            .collect();
        if plain
            .iter()
            .any(|l| l.entry.public_key().key_data() == key.key_data())
        {
            return Verdict::Trusted;
        }
        if let Some(l) = plain
            .iter()
            .find(|l| l.entry.public_key().algorithm() == key.algorithm())
        {
            return Verdict::Changed {
                path: self.path.clone(),
                line: l.number,
            };
        }
        let mut other_types: Vec<String> = plain
            .iter()
            .map(|l| l.entry.public_key().algorithm().as_str().to_string())
            .collect();
        other_types.dedup();
        Verdict::Unknown { other_types }
    }

    /// True when a `@cert-authority` line applies to this host (then host certificates are asked
    /// for, as OpenSSH does).
    pub fn has_cert_authority_for(&self, host: &str, port: u16) -> bool {
        let name = host_key_name(host, port);
        self.lines.iter().any(|l| {
            l.entry.marker() == Some(&Marker::CertAuthority)
                && patterns_match(l.entry.host_patterns(), &name)
        })
    }

    /// Checks a host certificate: trusted when it is a host certificate signed by a
    /// `@cert-authority` key listed for this host, valid now and naming the host as a principal.
    /// Otherwise the certificate's key is checked like a plain key (OpenSSH's fallback).
    pub fn check_certificate(&self, host: &str, port: u16, cert: &Certificate) -> Verdict {
        let name = host_key_name(host, port);
        if let Some(l) = self.lines.iter().find(|l| {
            l.entry.marker() == Some(&Marker::Revoked)
                && (l.entry.public_key().key_data() == cert.signature_key()
                    || l.entry.public_key().key_data() == cert.public_key())
        }) {
            return Verdict::Revoked {
                path: self.path.clone(),
                line: l.number,
            };
        }
        let cas: Vec<_> = self
            .lines
            .iter()
            .filter(|l| {
                l.entry.marker() == Some(&Marker::CertAuthority)
                    && patterns_match(l.entry.host_patterns(), &name)
            })
            .map(|l| l.entry.public_key().fingerprint(HashAlg::Sha256))
            .collect();
        let principal_ok =
            cert.valid_principals().is_empty() || cert.valid_principals().iter().any(|p| p == host);
        if !cas.is_empty()
            && principal_ok
            && cert.cert_type() == CertType::Host
            && cert.validate(cas.iter()).is_ok()
        {
            return Verdict::Trusted;
        }
        self.check(host, port, &PublicKey::new(cert.public_key().clone(), ""))
    }

    /// Appends `key` for `host:port` to the file (creating it and its directory) and to this list.
    pub fn add(&mut self, host: &str, port: u16, key: &PublicKey) -> Result<(), Error> {
        let name = host_key_name(host, port);
        let mut key = key.clone();
        key.set_comment("");
        let key_text = key.to_openssh().map_err(|e| Error::Key {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let line = format!("{name} {}", key_text.trim());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let existing = std::fs::read(&self.path).unwrap_or_default();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        let mut text = String::new();
        if !existing.is_empty() && !existing.ends_with(b"\n") {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        let number = String::from_utf8_lossy(&existing).lines().count() + 1;
        if let Ok(entry) = line.parse::<Entry>() {
            self.lines.push(Line { number, entry });
        }
        Ok(())
    }
}

/// OpenSSH `match_hostname`: a negated pattern that matches wins (no match); otherwise any
/// positive pattern that matches.
fn patterns_match(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => hmac_sha1(salt, name.as_bytes()) == *hash,
        HostPatterns::Patterns(list) => {
            let mut positive = false;
            for p in list {
                if let Some(neg) = p.strip_prefix('!') {
                    if wildcard_match(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                        return false;
                    }
                } else if wildcard_match(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                    positive = true;
                }
            }
            positive
        }
    }
}

/// `*` matches any run of characters, `?` exactly one.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// HMAC-SHA1 (RFC 2104), as used by OpenSSH's `HashKnownHosts`.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let d = Sha1::digest(key);
        k[..20].copy_from_slice(&d);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    let out = outer.finalize();
    let mut res = [0u8; 20];
    res.copy_from_slice(&out);
    res
}

/// Produces a hashed host name (`|1|salt|hash`) for `name` with the given salt.
pub fn hash_host_name(name: &str, salt: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "|1|{}|{}",
        b64.encode(salt),
        b64.encode(hmac_sha1(salt, name.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.example.com", "a.example.com"));
        assert!(wildcard_match("web?", "web1"));
        assert!(!wildcard_match("web?", "web10"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "ac"));
    }

    #[test]
    fn hmac_matches_rfc2202_case_2() {
        let out = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
