//! Who is calling: passwords (argon2id), JWT access tokens, opaque refresh tokens, API keys and
//! HTTP Basic, all turned into one [`Principal`].

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::Error;
use crate::metrics::{AuthFailure, AuthMethod};
use crate::model::{ApiKey, Role, User};
use crate::problem::AppError;
use crate::state::AppState;
use crate::store::{Store, now};

/// Prefix of every API key, so they are easy to spot (and to tell from a JWT).
pub const API_KEY_PREFIX: &str = "opk_";

/// An authenticated caller (cheap to clone: it is looked at on every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `user:<uuid>` or `key:<uuid>`: the rate-limit and idempotency scope.
    pub id: Arc<str>,
    /// Username or key name.
    pub name: Arc<str>,
    pub role: Role,
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    ApiKey,
}

impl Principal {
    /// 403 unless the role may write.
    pub fn require_write(&self) -> Result<(), AppError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "role {} is read-only; an operator or admin may do this",
                self.role
            )))
        }
    }
}

/// The handler-side extractor: 401 when the request carried no credentials.
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "authentication required: send `Authorization: Bearer <token>`, `X-API-Key: <key>` or HTTP Basic credentials".into(),
                )
            })
    }
}

/// The principal of a request that writes: a read-only role is refused (403) here, before the
/// handler's body extractor, so a viewer's bad body is a 403 and not a 415/400.
#[derive(Debug)]
pub struct Writer(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Writer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        principal.require_write()?;
        Ok(Writer(principal))
    }
}

/// Issuer (`iss`) and audience (`aud`) of every access token: a token minted for something else
/// with the same key is refused.
pub const ISSUER: &str = "opskit";
pub const AUDIENCE: &str = "opskit";

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: u64 = 5;

/// JWT claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// The login (refresh-token family) the token belongs to: logging out, a detected refresh
    /// reuse, a password change or the user's removal ends it.
    pub sid: Uuid,
    pub typ: String,
}

/// Signing and verification keys (HS256, aws-lc-rs backend).
#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    /// Longest lifetime a token may claim (the configured access-token TTL).
    max_ttl: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

impl JwtKeys {
    pub fn new(secret: &SecretString, access_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        Self {
            enc: EncodingKey::from_secret(bytes),
            dec: DecodingKey::from_secret(bytes),
            validation,
            max_ttl: i64::try_from(access_ttl.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// An access token for `user` in the login `sid`.
    pub fn issue(&self, user: &User, sid: Uuid, ttl: Duration) -> Result<String, Error> {
        let iat = now().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs())
            .map_err(|_| Error::Invalid("access token lifetime too long".into()))?;
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            role: user.role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(ttl),
            jti: Uuid::new_v4().to_string(),
            sid,
            typ: "access".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| Error::Token(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation) {
            Ok(data) if data.claims.typ == "access" => data.claims,
            Ok(_) => return Err(AppError::Unauthorized("not an access token".into())),
            Err(e) => {
                return Err(AppError::Unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        "access token expired; get a new one with POST /auth/refresh".into()
                    }
                    ErrorKind::ImmatureSignature => "access token is not valid yet".into(),
                    ErrorKind::InvalidSignature => "access token signature is invalid".into(),
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                        "access token was not issued for this API".into()
                    }
                    _ => "access token is malformed or invalid".into(),
                }));
            }
        };
        // jsonwebtoken checks exp and nbf; a token issued in the future or claiming a longer
        // life than this server gives is not one of ours
        let now = now_unix();
        let leeway = i64::try_from(LEEWAY).unwrap_or(5);
        if claims.iat > now.saturating_add(leeway) {
            return Err(AppError::Unauthorized(
                "access token is not valid yet (issued in the future)".into(),
            ));
        }
        if claims.exp > now.saturating_add(self.max_ttl).saturating_add(leeway) {
            return Err(AppError::Unauthorized(
                "access token claims a longer lifetime than this server issues".into(),
            ));
        }
        Ok(claims)
    }
}

/// Random bytes, base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256, hex. Used for high-entropy secrets (API keys, refresh tokens) only.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Hashes a password with argon2id off the async threads.
pub async fn hash_password(password: SecretString) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Hash(e.to_string()))
    })
    .await
    .map_err(|e| Error::Hash(e.to_string()))?
}

/// A valid argon2id hash of a random password: verified against when the user does not exist,
/// so a wrong username costs as much time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$G2Xw2Kq0Nn3oC0v3a4ZlqZ0Q3Q0bqj9p1n3e7vH7r0Y";

/// Checks a password against an argon2 hash off the async threads.
pub async fn verify_password(password: SecretString, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        match PasswordHash::new(&hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false)
}

/// A new API key: (the key to show once, the stored record).
pub fn new_api_key(name: &str, role: Role) -> (SecretString, ApiKey) {
    let secret = format!("{API_KEY_PREFIX}{}", random_token(32));
    let record = ApiKey {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        prefix: secret.chars().take(12).collect(),
        key_hash: sha256_hex(&secret),
        role,
        created_at: now(),
        revoked_at: None,
    };
    (SecretString::from(secret), record)
}

async fn principal_from_api_key(
    state: &AppState,
    ip: Option<IpAddr>,
    key: &str,
) -> Result<Principal, AppError> {
    gate(state, AuthMethod::ApiKey, ip, None)?;
    let found = state.db().api_key_by_hash(&sha256_hex(key)).await?;
    match found {
        Some(k) if k.revoked_at.is_none() => Ok(Principal {
            id: format!("key:{}", k.id).into(),
            name: k.name.into(),
            role: k.role,
            kind: PrincipalKind::ApiKey,
        }),
        found => {
            // the key's first characters name it in the log without giving it away
            let prefix: String = key.chars().take(8).collect();
            failed(state, AuthMethod::ApiKey, ip, None, &prefix);
            Err(AppError::Unauthorized(if found.is_some() {
                "this API key has been revoked".into()
            } else {
                "unknown API key".into()
            }))
        }
    }
}

/// The guessing throttle, consulted before any lookup or hashing (see [`crate::throttle`]).
fn gate(
    state: &AppState,
    method: AuthMethod,
    ip: Option<IpAddr>,
    username: Option<&str>,
) -> Result<(), AppError> {
    let Some(wait) = state.throttle().and_then(|t| t.locked(ip, username)) else {
        return Ok(());
    };
    state.metrics().auth_failure(method, AuthFailure::Throttled);
    tracing::debug!(method = method.as_str(), ip = ?ip, username = ?username, "authentication attempt throttled");
    Err(AppError::Throttled(wait.as_secs().max(1)))
}

/// Records a failed attempt: the throttle, the metrics and the log (never the secret).
fn failed(
    state: &AppState,
    method: AuthMethod,
    ip: Option<IpAddr>,
    username: Option<&str>,
    who: &str,
) {
    if let Some(t) = state.throttle() {
        t.failed(ip, username);
    }
    state
        .metrics()
        .auth_failure(method, AuthFailure::BadCredentials);
    let ip = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
    tracing::warn!(method = method.as_str(), who = %who.escape_debug(), ip = %ip, "authentication failed");
}

/// Resolves the credentials on a request (none is `Ok(None)`; bad ones are a 401, a throttled
/// attempt a 429).
pub async fn authenticate(
    state: &AppState,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| AppError::Unauthorized("X-API-Key is not valid text".into()))?;
        return principal_from_api_key(state, ip, key.trim())
            .await
            .map(Some);
    }
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("Authorization header is not valid text".into()))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.starts_with(API_KEY_PREFIX) {
            return principal_from_api_key(state, ip, rest).await.map(Some);
        }
        return bearer_principal(state, rest).await.map(Some);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        if !state.config().basic_auth {
            return Err(AppError::Unauthorized(
                "HTTP Basic authentication is turned off on this server; log in with POST /auth/login and use the bearer token".into(),
            ));
        }
        let decoded = STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| AppError::Unauthorized("malformed Basic credentials".into()))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| AppError::Unauthorized("malformed Basic credentials".into()))?;
        let user = login(
            state,
            AuthMethod::Basic,
            ip,
            user,
            SecretString::from(password.to_owned()),
        )
        .await?;
        return Ok(Some(Principal {
            id: format!("user:{}", user.id).into(),
            name: user.username.into(),
            role: user.role,
            kind: PrincipalKind::User,
        }));
    }
    Err(AppError::Unauthorized(format!(
        "unsupported authorization scheme {scheme:?}: use Bearer, Basic or X-API-Key"
    )))
}

/// The caller behind an access token. A verified token is remembered (see [`TokenCache`]), so
/// the signature is checked once per token, not once per request; every
/// [`ServerConfig::user_recheck`](crate::ServerConfig::user_recheck) the user is looked up again,
/// so a removed user is refused and a changed role applies without waiting for the token to
/// expire.
async fn bearer_principal(state: &AppState, token: &str) -> Result<Principal, AppError> {
    let now = Instant::now();
    let unix = now_unix();
    let recheck = state.config().user_recheck;
    if let Some(p) = state.tokens().get(token, unix, now, recheck) {
        return Ok(p);
    }
    let claims = state.jwt().verify(token)?;
    let user_id = Uuid::parse_str(&claims.sub)
        .map_err(|_| AppError::Unauthorized("access token is malformed or invalid".into()))?;
    let user = state.db().user_by_id(user_id).await?.ok_or_else(|| {
        AppError::Unauthorized(
            "the user of this access token no longer exists; log in as another user".into(),
        )
    })?;
    // the login the token belongs to must still be live (logout, refresh reuse, password
    // change and removal end it), checked as often as the user
    if !state.db().session_active(claims.sid).await? {
        return Err(AppError::Unauthorized(
            "this login has ended (logged out, password changed or token reuse); log in again"
                .into(),
        ));
    }
    let principal = Principal {
        id: format!("user:{}", user.id).into(),
        name: user.username.into(),
        role: user.role,
        kind: PrincipalKind::User,
    };
    state
        .tokens()
        .put(token, principal.clone(), claims.sid, claims.exp, now);
    Ok(principal)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Most verified access tokens remembered; past that the cache starts over.
const MAX_TOKENS: usize = 10_000;

struct Verified {
    principal: Principal,
    /// The login the token belongs to.
    sid: Uuid,
    /// The token's `exp` (Unix seconds).
    exp: i64,
    /// When the user was last looked up.
    checked: Instant,
}

/// Access tokens whose signature was verified, with the caller they stand for. Only tokens that
/// verified are stored, so a flood of bogus tokens cannot fill it.
#[derive(Default)]
pub struct TokenCache {
    map: RwLock<HashMap<Box<str>, Verified>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache")
    }
}

impl TokenCache {
    /// The caller, when `token` verified before, has not expired and its user was looked up
    /// less than `recheck` ago.
    fn get(&self, token: &str, unix: i64, now: Instant, recheck: Duration) -> Option<Principal> {
        let map = self.map.read().ok()?;
        let v = map.get(token)?;
        (v.exp > unix && now.saturating_duration_since(v.checked) < recheck)
            .then(|| v.principal.clone())
    }

    /// Forgets every token of the login `sid` (on this process; other replicas notice at their
    /// next re-check).
    pub fn forget_session(&self, sid: Uuid) {
        if let Ok(mut map) = self.map.write() {
            map.retain(|_, v| v.sid != sid);
        }
    }

    fn put(&self, token: &str, principal: Principal, sid: Uuid, exp: i64, now: Instant) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map.len() >= MAX_TOKENS {
            map.clear();
        }
        map.insert(
            token.into(),
            Verified {
                principal,
                sid,
                exp,
                checked: now,
            },
        );
    }
}

/// Checks a username and password behind the guessing throttle; a 401 that does not say which
/// was wrong, a 429 (without looking at the password) while the address or username is locked.
pub async fn login(
    state: &AppState,
    method: AuthMethod,
    ip: Option<IpAddr>,
    username: &str,
    password: SecretString,
) -> Result<User, AppError> {
    gate(state, method, ip, Some(username))?;
    let user = state.db().user_by_name(username).await?;
    state.metrics().password_verified();
    let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    match user {
        Some(u) if ok => Ok(u),
        _ => {
            failed(state, method, ip, Some(username), username);
            Err(AppError::Unauthorized("wrong username or password".into()))
        }
    }
}
