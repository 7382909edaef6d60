//! Small value types shared by flags and profiles: durations, rates, secret references, page
//! styles. Each parses from text with an error that says what was expected, so a bad value in
//! the config file is reported with its key and line by the TOML parser.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes written `1048576`, `512K`, `256M` or `2G` (units of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("bad size `{s}`: write e.g. 1048576, 512K, 256M or 2G");
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

/// A duration flag or profile value, in the one syntax of every command (`500ms`, `30s`, `5m`,
/// `1h`, `1d`, a bare number of seconds): parsed by [`crate::duration::parse_duration`]. The
/// wrapper only adds what a profile needs: a TOML number is read as seconds, and `config show`
/// writes the value back in that syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::duration::parse_duration(s).map(Span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

/// A request rate written `N/s`, `N/m` or `N/h` (`10/s`, `100/m`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad rate `{s}`: write N/s, N/m or N/h, e.g. 10/s");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("bad rate `{s}`: the count must be at least 1"));
        }
        let per = match unit.trim() {
            "s" | "sec" | "1s" => Duration::from_secs(1),
            "m" | "min" | "1m" => Duration::from_secs(60),
            "h" | "1h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A secret as written by the user: `env:VAR`, `file:PATH`, `cmd:COMMAND`,
/// `vault:MOUNT/PATH#FIELD` (references, which may be shown), or the value itself (`value:TEXT`
/// or any other text), held in a [`SecretString`] and never shown.
#[derive(Clone)]
pub enum SecretRef {
    /// `env:`, `file:`, `cmd:` or `vault:` and its argument, as written.
    Reference(String),
    /// The secret itself.
    Inline(SecretString),
}

impl SecretRef {
    /// Parses the user's spelling (see the type's docs).
    pub fn new(spec: &str) -> Self {
        if ["env:", "file:", "cmd:", "vault:"]
            .iter()
            .any(|p| spec.starts_with(p))
        {
            SecretRef::Reference(spec.to_owned())
        } else {
            let value = spec.strip_prefix("value:").unwrap_or(spec);
            SecretRef::Inline(SecretString::from(value.to_owned()))
        }
    }

    /// The reference text (`env:VAR`, …), `None` for an inline secret.
    pub fn reference(&self) -> Option<&str> {
        match self {
            SecretRef::Reference(r) => Some(r),
            SecretRef::Inline(_) => None,
        }
    }

    /// What `config show`, `--verbose` and `--curl` may print.
    pub fn redacted(&self) -> String {
        match self {
            SecretRef::Reference(r) => r.clone(),
            SecretRef::Inline(_) => "<redacted>".into(),
        }
    }

    /// The engine's secret source.
    pub fn to_secret(&self) -> opskit_http::Secret {
        match self {
            SecretRef::Reference(r) => opskit_http::Secret::parse(r),
            SecretRef::Inline(v) => opskit_http::Secret::Value(v.clone()),
        }
    }

    /// A shell expression yielding the secret, for `--curl` (the value is never written out
    /// when it came from a reference; `vault:` has none: it comes out redacted).
    pub fn shell_expr(&self) -> Option<String> {
        let r = self.reference()?;
        if let Some(v) = r.strip_prefix("env:") {
            Some(format!("${{{v}}}"))
        } else if let Some(p) = r.strip_prefix("file:") {
            Some(format!("$(cat {})", super::request::shell_quote(p)))
        } else {
            r.strip_prefix("cmd:").map(|c| format!("$({c})"))
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({})", self.redacted())
    }
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        for prefix in ["env:", "file:", "cmd:"] {
            if s.strip_prefix(prefix)
                .is_some_and(|rest| rest.trim().is_empty())
            {
                return Err(format!("`{prefix}` needs a name after the colon"));
            }
        }
        if let Some(r) = s.strip_prefix("vault:") {
            opskit_http::VaultRef::parse(r)?;
        }
        Ok(SecretRef::new(s))
    }
}

/// How `--paginate` finds the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PageStyle {
    /// Follow `Link: <…>; rel="next"` headers (GitHub).
    Link,
    /// `page=1,2,3…` until a short or empty page.
    Page,
    /// `offset=0,50,100…` until a short or empty page.
    Offset,
    /// A cursor read from the response (JSON pointer) and sent back as a parameter.
    Cursor,
}

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
    )*};
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

serde_via_str!(Rate, SecretRef);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => n.to_string().parse().map_err(serde::de::Error::custom),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!("30s".parse::<Span>().unwrap().0, Duration::from_secs(30));
        assert_eq!(
            "500ms".parse::<Span>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!("2m".parse::<Span>().unwrap().0, Duration::from_secs(120));
        assert_eq!(
            "1.5".parse::<Span>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert!("ten".parse::<Span>().unwrap_err().contains("500ms"));
        assert!("5 parsecs".parse::<Span>().is_err());
        // the one parser's rules: more than zero, at most 400 days
        assert!("0".parse::<Span>().is_err());
        assert!("401d".parse::<Span>().is_err());
    }

    #[test]
    fn rates() {
        let r: Rate = "10/s".parse().unwrap();
        assert_eq!((r.count, r.per), (10, Duration::from_secs(1)));
        assert_eq!("100/m".parse::<Rate>().unwrap().to_string(), "100/m");
        assert!("0/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn secrets_redact_inline_values_only() {
        assert_eq!(SecretRef::new("hunter2").redacted(), "<redacted>");
        assert_eq!(SecretRef::new("value:env:x").redacted(), "<redacted>");
        assert_eq!(SecretRef::new("env:TOKEN").redacted(), "env:TOKEN");
        assert_eq!(
            SecretRef::new("env:TOKEN").shell_expr().unwrap(),
            "${TOKEN}"
        );
        assert!(SecretRef::new("hunter2").shell_expr().is_none());
        assert!("env:".parse::<SecretRef>().is_err());
        assert_eq!(
            SecretRef::new("vault:secret/gh#token").redacted(),
            "vault:secret/gh#token"
        );
        assert!(
            SecretRef::new("vault:secret/gh#token")
                .shell_expr()
                .is_none()
        );
        assert!("vault:secret/gh".parse::<SecretRef>().is_err());
        assert!(!format!("{:?}", SecretRef::new("hunter2")).contains("hunter2"));
    }
}
