//! Signed webhooks: the Standard Webhooks scheme and the seeds' `X-Signature: sha256=<hex>` style.
//!
//! Standard Webhooks (<https://www.standardwebhooks.com/>): the sender puts three headers on the
//! request — `webhook-id` (a unique message id, also the idempotency key), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! several space-separated entries when keys are being rotated). Secrets are `whsec_` followed by
//! base64 of the key bytes.
//!
//! On top of the standard headers, opskit adds `opskit-key-id`: a short fingerprint of each
//! signing key (an HMAC of a fixed label, which reveals nothing about the key). Receivers that do
//! not know it ignore it; `verify` uses it only to tell "you hold a different secret" from "the
//! message was changed after signing" — the request is rejected either way.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the Unix timestamp in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Largest header block [`ReceivedHeaders::read_block`] reads (64 KiB).
pub const MAX_HEADER_BLOCK: u64 = 64 * 1024;

/// Header carrying one or more `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// opskit's extra header: fingerprints of the signing keys (diagnostics only).
pub const HEADER_KEY_ID: &str = "opskit-key-id";
/// The seeds' header: `X-Signature: sha256=<hex HMAC-SHA256 of the body>`.
pub const HEADER_X_SIGNATURE: &str = "x-signature";
/// Default timestamp tolerance, as recommended by the spec.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const SECRET_PREFIX: &str = "whsec_";
const KEY_ID_LABEL: &[u8] = b"opskit webhook key id v1";

/// A Standard Webhooks signing key (`whsec_<base64>`), held so it never shows in logs or `Debug`.
pub struct WebhookSecret {
    key: SecretBox<Vec<u8>>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret(key id {}, redacted)", self.key_id())
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self::from_bytes(self.key.expose_secret().clone())
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        if b64.is_empty() {
            return Err(Error::InvalidSecret("the secret is empty".into()));
        }
        let key = B64.decode(b64).map_err(|_| {
            Error::InvalidSecret(
                "a Standard Webhooks secret is `whsec_` followed by base64 (e.g. \
                 `whsec_$(openssl rand -base64 32)`); this one is not valid base64"
                    .into(),
            )
        })?;
        if key.is_empty() {
            return Err(Error::InvalidSecret(
                "the secret decodes to no bytes".into(),
            ));
        }
        Ok(Self::from_bytes(key))
    }

    /// Builds a secret from raw key bytes.
    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self {
            key: SecretBox::new(Box::new(key)),
        }
    }

    /// A fresh random 32-byte secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::fill(&mut key[..]);
        Self::from_bytes(key)
    }

    /// The `whsec_…` text form (exposes the secret: only for printing it on purpose).
    pub fn to_whsec(&self) -> SecretString {
        SecretString::from(format!(
            "{SECRET_PREFIX}{}",
            B64.encode(self.key.expose_secret())
        ))
    }

    /// A 16-hex-digit fingerprint of the key, safe to show and to send.
    pub fn key_id(&self) -> String {
        let mac = self.mac(&[KEY_ID_LABEL]);
        hex::encode(&mac[..8])
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The raw signature of one message: HMAC-SHA256 of `id.timestamp.body`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        self.mac(&[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ])
    }
}

/// The headers that go with one signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    /// Space-separated `v1,<base64>` entries, one per signing secret.
    pub signature: String,
    /// Space-separated key fingerprints, one per signing secret.
    pub key_id: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, the three standard headers first.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
            (HEADER_KEY_ID, self.key_id.clone()),
        ]
    }
}

/// A fresh message id: `msg_` and a UUIDv7 (time-ordered, unique).
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Signs `body` with every secret (several during a key rotation).
pub fn sign(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<SignedHeaders, Error> {
    if secrets.is_empty() {
        return Err(Error::InvalidSecret("no signing secret given".into()));
    }
    validate_id(id).map_err(Error::InvalidInput)?;
    let signature = secrets
        .iter()
        .map(|s| format!("v1,{}", B64.encode(s.signature(id, timestamp, body))))
        .collect::<Vec<_>>()
        .join(" ");
    let key_id = secrets
        .iter()
        .map(WebhookSecret::key_id)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature,
        key_id,
    })
}

fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the webhook id is empty".into());
    }
    if id.contains('.') || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the webhook id {id:?} must not contain dots, spaces or control characters"
        ));
    }
    Ok(())
}

/// Why a delivery was rejected. Each cause has its own variant and a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A required header is absent.
    MissingHeader(&'static str),
    /// A header is present but cannot be parsed.
    MalformedHeader {
        header: &'static str,
        reason: String,
    },
    /// The timestamp is further in the past than the tolerance.
    TimestampTooOld { age_secs: i64, tolerance_secs: u64 },
    /// The timestamp is further in the future than the tolerance.
    TimestampTooNew {
        ahead_secs: i64,
        tolerance_secs: u64,
    },
    /// The sender signed with a key we do not hold (known from `opskit-key-id`).
    WrongSecret,
    /// Signed with our key, but the body, id or timestamp was changed afterwards.
    BadSignature,
    /// No signature matched and the sender gave no key id, so the cause is one of the two above.
    SignatureMismatch,
    /// This id was already accepted once.
    Replayed { id: String },
}

impl Rejection {
    /// A short machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) | Rejection::MalformedHeader { .. } => "malformed_header",
            Rejection::TimestampTooOld { .. } => "timestamp_too_old",
            Rejection::TimestampTooNew { .. } => "timestamp_too_new",
            Rejection::WrongSecret => "wrong_secret",
            Rejection::BadSignature => "bad_signature",
            Rejection::SignatureMismatch => "signature_mismatch",
            Rejection::Replayed { .. } => "replayed",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::MissingHeader(h) => write!(f, "malformed headers: `{h}` is missing"),
            Rejection::MalformedHeader { header, reason } => {
                write!(f, "malformed header `{header}`: {reason}")
            }
            Rejection::TimestampTooOld {
                age_secs,
                tolerance_secs,
            } => write!(
                f,
                "timestamp too old: signed {age_secs}s ago, tolerance is {tolerance_secs}s \
                 (a replay, or the sender's clock is wrong)"
            ),
            Rejection::TimestampTooNew {
                ahead_secs,
                tolerance_secs,
            } => write!(
                f,
                "timestamp too new: {ahead_secs}s in the future, tolerance is {tolerance_secs}s \
                 (check the clocks)"
            ),
            Rejection::WrongSecret => f.write_str(
                "wrong secret: the sender signed with a different key than the one given here",
            ),
            Rejection::BadSignature => f.write_str(
                "bad signature: signed with this key, but the body, id or timestamp was changed \
                 after signing",
            ),
            Rejection::SignatureMismatch => f.write_str(
                "bad signature: no signature matches (the body, id or timestamp was changed, or \
                 the secret is not the sender's)",
            ),
            Rejection::Replayed { id } => {
                write!(f, "replayed: webhook id {id:?} was already accepted")
            }
        }
    }
}

/// Remembers accepted message ids so a replay within the tolerance window is caught.
pub trait SeenIds: Send + Sync {
    /// Records `id` (signed at `timestamp`, received at `now`, both Unix seconds) and returns
    /// `false` when it was already recorded. Ids signed more than twice the tolerance before
    /// `now` may be forgotten: their timestamps are rejected anyway.
    fn insert_new(
        &self,
        id: &str,
        timestamp: i64,
        now: i64,
        tolerance: Duration,
    ) -> Result<bool, Error>;
}

/// An in-memory id store. Ids signed more than twice the tolerance ago are forgotten (their
/// timestamps are rejected anyway), and at most `capacity` ids are kept (the oldest go first), so
/// memory stays bounded whatever the traffic.
#[derive(Debug)]
pub struct MemorySeenIds {
    ids: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

impl Default for MemorySeenIds {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl MemorySeenIds {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store keeping at most `capacity` ids (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            ids: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }
}

fn horizon(now: i64, tolerance: Duration) -> i64 {
    now.saturating_sub(2 * i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX / 4))
}

impl SeenIds for MemorySeenIds {
    fn insert_new(
        &self,
        id: &str,
        timestamp: i64,
        now: i64,
        tolerance: Duration,
    ) -> Result<bool, Error> {
        let mut ids = self
            .ids
            .lock()
            .map_err(|_| Error::InvalidInput("seen-id store poisoned".into()))?;
        let oldest = horizon(now, tolerance);
        ids.retain(|_, ts| *ts >= oldest);
        if ids.contains_key(id) {
            return Ok(false);
        }
        if ids.len() >= self.capacity
            && let Some(oldest_id) = ids
                .iter()
                .min_by_key(|(_, ts)| **ts)
                .map(|(k, _)| k.clone())
        {
            ids.remove(&oldest_id);
        }
        ids.insert(id.to_owned(), timestamp);
        Ok(true)
    }
}

/// A file-backed id store (one `timestamp id` per line) for receivers that run once per request,
/// e.g. `opskit webhook verify --seen-ids FILE` in a shell hook. Not safe for concurrent writers.
#[derive(Debug, Clone)]
pub struct FileSeenIds {
    path: PathBuf,
}

impl FileSeenIds {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl SeenIds for FileSeenIds {
    fn insert_new(
        &self,
        id: &str,
        timestamp: i64,
        now: i64,
        tolerance: Duration,
    ) -> Result<bool, Error> {
        let io = |e: std::io::Error| Error::SeenIds {
            path: self.path.display().to_string(),
            source: e,
        };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let oldest = horizon(now, tolerance);
        let mut kept = Vec::new();
        for line in text.lines() {
            let Some((ts, seen)) = line.split_once(' ') else {
                continue;
            };
            let Ok(ts) = ts.parse::<i64>() else { continue };
            if seen == id {
                return Ok(false);
            }
            if ts >= oldest {
                kept.push(line);
            }
        }
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{timestamp} {id}\n"));
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(out.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(true)
    }
}

/// The headers of a received delivery, as strings.
#[derive(Debug, Clone, Default)]
pub struct ReceivedHeaders {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub key_id: Option<String>,
    /// The seeds' `X-Signature` header, when present.
    pub x_signature: Option<String>,
}

impl ReceivedHeaders {
    /// Picks the headers out of `(name, value)` pairs (names compared case-insensitively).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Self::default();
        for (name, value) in pairs {
            let value = Some(value.trim().to_owned());
            match name.trim().to_ascii_lowercase().as_str() {
                HEADER_ID => out.id = value,
                HEADER_TIMESTAMP => out.timestamp = value,
                HEADER_SIGNATURE => out.signature = value,
                HEADER_KEY_ID => out.key_id = value,
                HEADER_X_SIGNATURE => out.x_signature = value,
                _ => {}
            }
        }
        out
    }

    /// Parses an HTTP-style header block (`Name: value` lines; other lines are ignored).
    pub fn parse_block(text: &str) -> Self {
        Self::from_pairs(text.lines().filter_map(|l| l.split_once(':')))
    }

    /// Reads and parses a header block of at most [`MAX_HEADER_BLOCK`] bytes from `reader`
    /// (a file, stdin): a larger input is an error, never read whole into memory.
    pub fn read_block(reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(reader, MAX_HEADER_BLOCK + 1),
            &mut buf,
        )?;
        if buf.len() as u64 > MAX_HEADER_BLOCK {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "more than {MAX_HEADER_BLOCK} bytes; a header block is a few lines of `Name: value`"
                ),
            ));
        }
        Ok(Self::parse_block(&String::from_utf8_lossy(&buf)))
    }
}

/// Verifies Standard Webhooks deliveries.
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Option<Duration>,
    seen: Option<Box<dyn SeenIds>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.secrets)
            .field("tolerance", &self.tolerance)
            .field("seen", &self.seen.is_some())
            .finish()
    }
}

impl Verifier {
    /// A verifier accepting any of `secrets` (several while keys rotate), with the default
    /// 5-minute tolerance and no replay store.
    pub fn new(secrets: Vec<WebhookSecret>) -> Result<Self, Error> {
        if secrets.is_empty() {
            return Err(Error::InvalidSecret("no verification secret given".into()));
        }
        Ok(Self {
            secrets,
            tolerance: Some(DEFAULT_TOLERANCE),
            seen: None,
        })
    }

    /// Sets the timestamp tolerance; `None` disables the timestamp check (not recommended).
    pub fn tolerance(mut self, tolerance: Option<Duration>) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Rejects ids already accepted, using `store`.
    pub fn seen_ids(mut self, store: Box<dyn SeenIds>) -> Self {
        self.seen = Some(store);
        self
    }

    /// Verifies a delivery at the current time.
    pub fn verify(&self, headers: &ReceivedHeaders, body: &[u8]) -> Result<(), Error> {
        self.verify_at(headers, body, unix_now())
    }

    /// Verifies a delivery as if the time were `now` (Unix seconds).
    ///
    /// Order: headers well-formed → timestamp within tolerance → a signature matches (constant
    /// time) → the id was not seen before (only recorded once everything else passed).
    pub fn verify_at(&self, headers: &ReceivedHeaders, body: &[u8], now: i64) -> Result<(), Error> {
        let reject = |r| Err(Error::Rejected(r));
        let Some(id) = headers.id.as_deref().filter(|s| !s.is_empty()) else {
            return reject(Rejection::MissingHeader(HEADER_ID));
        };
        let Some(ts_text) = headers.timestamp.as_deref().filter(|s| !s.is_empty()) else {
            return reject(Rejection::MissingHeader(HEADER_TIMESTAMP));
        };
        let Some(sig_text) = headers.signature.as_deref().filter(|s| !s.is_empty()) else {
            return reject(Rejection::MissingHeader(HEADER_SIGNATURE));
        };
        let Ok(timestamp) = ts_text.parse::<i64>() else {
            return reject(Rejection::MalformedHeader {
                header: HEADER_TIMESTAMP,
                reason: format!("{ts_text:?} is not Unix seconds"),
            });
        };
        // One malformed entry does not spoil the header: a sender rotating secrets (or a proxy
        // adding its own scheme) may put several; any valid `v1` entry that matches verifies.
        let mut candidates = Vec::new();
        let mut malformed: Option<String> = None;
        for entry in sig_text.split_whitespace() {
            let Some((version, value)) = entry.split_once(',') else {
                malformed.get_or_insert_with(|| format!("entry {entry:?} is not `v1,<base64>`"));
                continue;
            };
            if version != "v1" {
                continue; // other schemes (e.g. v1a asymmetric) are not ours to check
            }
            match B64.decode(value) {
                Ok(sig) => candidates.push(sig),
                Err(_) => {
                    malformed.get_or_insert_with(|| format!("entry {entry:?} is not valid base64"));
                }
            }
        }
        if candidates.is_empty() {
            return reject(Rejection::MalformedHeader {
                header: HEADER_SIGNATURE,
                reason: malformed.unwrap_or_else(|| "no `v1,<base64>` entry".into()),
            });
        }
        if let Some(tolerance) = self.tolerance {
            let tol = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
            let tolerance_secs = tolerance.as_secs();
            if now.saturating_sub(timestamp) > tol {
                return reject(Rejection::TimestampTooOld {
                    age_secs: now.saturating_sub(timestamp),
                    tolerance_secs,
                });
            }
            if timestamp.saturating_sub(now) > tol {
                return reject(Rejection::TimestampTooNew {
                    ahead_secs: timestamp.saturating_sub(now),
                    tolerance_secs,
                });
            }
        }
        let mut matched = false;
        for secret in &self.secrets {
            let expected = secret.signature(id, timestamp, body);
            for candidate in &candidates {
                // `ct_eq` on slices of different lengths is false, in constant time for the
                // length we compute.
                matched |= bool::from(expected[..].ct_eq(&candidate[..]));
            }
        }
        if !matched {
            let Some(key_ids) = headers.key_id.as_deref() else {
                return reject(Rejection::SignatureMismatch);
            };
            let ours = self.secrets.iter().any(|s| {
                let mine = s.key_id();
                key_ids.split_whitespace().any(|k| k == mine)
            });
            return reject(if ours {
                Rejection::BadSignature
            } else {
                Rejection::WrongSecret
            });
        }
        if let Some(store) = &self.seen {
            let tolerance = self.tolerance.unwrap_or(DEFAULT_TOLERANCE);
            if !store.insert_new(id, timestamp, now, tolerance)? {
                return reject(Rejection::Replayed { id: id.to_owned() });
            }
        }
        Ok(())
    }
}

/// The seeds' style: a plain secret string (its UTF-8 bytes are the HMAC key).
pub struct XSignatureSecret {
    key: SecretString,
}

impl fmt::Debug for XSignatureSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XSignatureSecret(redacted)")
    }
}

impl XSignatureSecret {
    pub fn new(secret: SecretString) -> Result<Self, Error> {
        if secret.expose_secret().is_empty() {
            return Err(Error::InvalidSecret("the secret is empty".into()));
        }
        Ok(Self { key: secret })
    }

    fn mac(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The header value: `sha256=<hex HMAC-SHA256 of body>`.
    pub fn sign(&self, body: &[u8]) -> String {
        format!("sha256={}", hex::encode(self.mac(body)))
    }

    /// Checks an `X-Signature` header value in constant time. This style has no timestamp and no
    /// id, so it cannot detect replays.
    pub fn verify(&self, header: &str, body: &[u8]) -> Result<(), Error> {
        let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
            return Err(Error::Rejected(Rejection::MalformedHeader {
                header: HEADER_X_SIGNATURE,
                reason: "expected `sha256=<hex>`".into(),
            }));
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return Err(Error::Rejected(Rejection::MalformedHeader {
                header: HEADER_X_SIGNATURE,
                reason: "the signature is not hexadecimal".into(),
            }));
        };
        if bool::from(self.mac(body)[..].ct_eq(&sig[..])) {
            Ok(())
        } else {
            Err(Error::Rejected(Rejection::SignatureMismatch))
        }
    }
}
