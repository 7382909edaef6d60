//! The guessing throttle: one gate in front of every check of a password or an API key
//! (`POST /auth/login`, HTTP Basic, `X-API-Key` / bearer API keys).
//!
//! Policy: each failed attempt is counted against the client address and, when there is one,
//! against the username. Each key may fail `per_minute` times in a burst, then once every
//! `60 s / per_minute` (a GCRA over failures only, so a script using the right credentials is
//! never slowed down by this gate). The gate is consulted **before** any lookup or hashing: while
//! either key is locked the attempt is refused with 429 without looking at the secret, so the right
//! password during a lockout gets exactly the answer a wrong one gets, and a throttled attempt
//! costs no argon2 time or memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Most keys remembered. When full, expired entries are dropped; if it is still full, new
/// username keys are not recorded (address keys always are), so a flood of made-up usernames
/// can neither grow memory nor reset an existing lockout.
const MAX_KEYS: usize = 100_000;

/// Longest username kept as a key (longer ones cannot exist).
const MAX_USERNAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(Option<IpAddr>),
    User(Box<str>),
}

/// See the module docs.
pub struct Throttle {
    /// Time one failure "costs".
    interval: Duration,
    /// How far ahead the theoretical arrival time may run before the key is locked.
    tolerance: Duration,
    /// Key → theoretical arrival time of the next allowed failure (GCRA).
    tat: RwLock<HashMap<Key, Instant>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Throttle(one failure per {:?})", self.interval)
    }
}

fn user_key(username: &str) -> Key {
    let end = username
        .char_indices()
        .nth(MAX_USERNAME)
        .map_or(username.len(), |(i, _)| i);
    Key::User(username[..end].into())
}

impl Throttle {
    /// `per_minute` failures per minute per key; `None` (no throttle) when 0.
    pub fn per_minute(per_minute: u32) -> Option<Throttle> {
        if per_minute == 0 {
            return None;
        }
        let interval = Duration::from_secs(60) / per_minute;
        Some(Throttle {
            interval,
            tolerance: interval * per_minute.saturating_sub(1),
            tat: RwLock::new(HashMap::new()),
        })
    }

    fn keys(ip: Option<IpAddr>, username: Option<&str>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::Ip(ip)).chain(username.map(user_key))
    }

    /// `Some(wait)` when the address or the username is locked out: refuse without checking.
    pub fn locked(&self, ip: Option<IpAddr>, username: Option<&str>) -> Option<Duration> {
        let now = Instant::now();
        let map = self.tat.read().ok()?;
        Self::keys(ip, username)
            .filter_map(|k| map.get(&k))
            .filter_map(|tat| tat.checked_duration_since(now))
            .filter(|ahead| *ahead > self.tolerance)
            .map(|ahead| ahead - self.tolerance)
            .max()
    }

    /// Records a failed attempt against the address and the username.
    pub fn failed(&self, ip: Option<IpAddr>, username: Option<&str>) {
        let now = Instant::now();
        let Ok(mut map) = self.tat.write() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, tat| *tat > now);
        }
        for key in Self::keys(ip, username) {
            if map.len() >= MAX_KEYS && !map.contains_key(&key) && matches!(key, Key::User(_)) {
                continue;
            }
            let tat = map.entry(key).or_insert(now);
            *tat = (*tat).max(now) + self.interval;
        }
    }

    /// Forgets keys whose failures have all expired (keeps memory bounded).
    pub fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut map) = self.tat.write() {
            map.retain(|_, tat| *tat > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_burst_and_per_username() {
        let t = Throttle::per_minute(3).unwrap();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(t.locked(a, Some("admin")).is_none());
            t.failed(a, Some("admin"));
        }
        let wait = t.locked(a, Some("admin")).unwrap();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20));
        // the username is locked from another address, the address for another username
        assert!(t.locked(b, Some("admin")).is_some());
        assert!(t.locked(a, Some("bob")).is_some());
        assert!(t.locked(b, Some("bob")).is_none());
        assert!(Throttle::per_minute(0).is_none());
    }
}
