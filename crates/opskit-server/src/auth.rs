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
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::Error;
use crate::app::AppState;
use crate::model::{ApiKey, Role, User};
use crate::problem::AppError;
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

/// JWT claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub typ: String,
}

/// Signing and verification keys (HS256, aws-lc-rs backend).
#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            enc: EncodingKey::from_secret(bytes),
            dec: DecodingKey::from_secret(bytes),
            validation,
        }
    }

    pub fn issue(&self, user: &User, ttl: std::time::Duration) -> Result<String, Error> {
        let iat = now().unix_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            role: user.role,
            iat,
            exp: iat + i64::try_from(ttl.as_secs()).unwrap_or(900),
            jti: Uuid::new_v4().to_string(),
            typ: "access".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| Error::Token(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation) {
            Ok(data) if data.claims.typ == "access" => Ok(data.claims),
            Ok(_) => Err(AppError::Unauthorized("not an access token".into())),
            Err(e) => Err(AppError::Unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => {
                    "access token expired; get a new one with POST /auth/refresh".into()
                }
                ErrorKind::InvalidSignature => "access token signature is invalid".into(),
                _ => "access token is malformed or invalid".into(),
            })),
        }
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

async fn principal_from_api_key(state: &AppState, key: &str) -> Result<Principal, AppError> {
    let found = state.db().api_key_by_hash(&sha256_hex(key)).await?;
    match found {
        Some(k) if k.revoked_at.is_none() => Ok(Principal {
            id: format!("key:{}", k.id).into(),
            name: k.name.into(),
            role: k.role,
            kind: PrincipalKind::ApiKey,
        }),
        Some(_) => Err(AppError::Unauthorized(
            "this API key has been revoked".into(),
        )),
        None => Err(AppError::Unauthorized("unknown API key".into())),
    }
}

/// Resolves the credentials on a request (none is `Ok(None)`; bad ones are a 401).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| AppError::Unauthorized("X-API-Key is not valid text".into()))?;
        return principal_from_api_key(state, key.trim()).await.map(Some);
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
            return principal_from_api_key(state, rest).await.map(Some);
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
        let user = login(state, user, SecretString::from(password.to_owned())).await?;
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
    let principal = Principal {
        id: format!("user:{}", user.id).into(),
        name: user.username.into(),
        role: user.role,
        kind: PrincipalKind::User,
    };
    state
        .tokens()
        .put(token, principal.clone(), claims.exp, now);
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

    fn put(&self, token: &str, principal: Principal, exp: i64, now: Instant) {
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
                exp,
                checked: now,
            },
        );
    }
}

/// Checks a username and password; a 401 that does not say which was wrong.
pub async fn login(
    state: &AppState,
    username: &str,
    password: SecretString,
) -> Result<User, AppError> {
    let user = state.db().user_by_name(username).await?;
    let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    match user {
        Some(u) if ok => Ok(u),
        _ => Err(AppError::Unauthorized("wrong username or password".into())),
    }
}
