//! Small value types shared by flags and profiles: durations, rates, secret references, page
//! styles. Each parses from text with an error that says what was expected, so a bad value in
//! the config file is reported with its key and line by the TOML parser.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written `500ms`, `30s`, `5m`, `1h`, `1d` or a bare number of seconds (`2.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("bad duration `{s}`: write e.g. 500ms, 30s, 5m, 1h or 1d");
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "" | "s" | "sec" | "secs" => n,
            "ms" => n / 1000.0,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            _ => return Err(bad()),
        };
        if !secs.is_finite() || !(0.0..=365.0 * 86400.0).contains(&secs) {
            return Err(bad());
        }
        Ok(Span(Duration::from_secs_f64(secs)))
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

/// A secret as written by the user: `env:VAR`, `file:PATH`, `cmd:COMMAND`, or the value itself.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRef(pub String);

impl SecretRef {
    /// Whether the text is the secret itself (as opposed to a reference to it).
    pub fn is_inline(&self) -> bool {
        !(self.0.starts_with("env:") || self.0.starts_with("file:") || self.0.starts_with("cmd:"))
    }

    /// What `config show`, `--verbose` and `--curl` may print.
    pub fn redacted(&self) -> String {
        if self.is_inline() {
            "<redacted>".into()
        } else {
            self.0.clone()
        }
    }

    /// The engine's secret source.
    pub fn to_secret(&self) -> opskit_http::Secret {
        opskit_http::Secret::parse(&self.0)
    }

    /// A shell expression yielding the secret, for `--curl` (the value is never written out
    /// when it came from a reference).
    pub fn shell_expr(&self) -> Option<String> {
        if let Some(v) = self.0.strip_prefix("env:") {
            Some(format!("${{{v}}}"))
        } else if let Some(p) = self.0.strip_prefix("file:") {
            Some(format!("$(cat {})", super::request::shell_quote(p)))
        } else {
            self.0.strip_prefix("cmd:").map(|c| format!("$({c})"))
        }
    }

    /// Reads the secret now (for the few places the binary needs the value itself).
    pub fn resolve_blocking(&self) -> Result<String, String> {
        if let Some(v) = self.0.strip_prefix("env:") {
            std::env::var(v).map_err(|_| format!("environment variable {v} is not set"))
        } else if let Some(p) = self.0.strip_prefix("file:") {
            std::fs::read_to_string(p)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("cannot read secret file {p}: {e}"))
        } else if let Some(c) = self.0.strip_prefix("cmd:") {
            let out = std::process::Command::new("sh")
                .args(["-c", c])
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("cannot run secret command `{c}`: {e}"))?;
            if !out.status.success() {
                return Err(format!("secret command `{c}` failed with {}", out.status));
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .trim_end_matches(['\n', '\r'])
                .to_owned())
        } else {
            Ok(self.0.strip_prefix("value:").unwrap_or(&self.0).to_owned())
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
        Ok(SecretRef(s.to_owned()))
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
        assert_eq!(SecretRef("hunter2".into()).redacted(), "<redacted>");
        assert_eq!(SecretRef("env:TOKEN".into()).redacted(), "env:TOKEN");
        assert_eq!(
            SecretRef("env:TOKEN".into()).shell_expr().unwrap(),
            "${TOKEN}"
        );
        assert!("env:".parse::<SecretRef>().is_err());
        assert!(!format!("{:?}", SecretRef("hunter2".into())).contains("hunter2"));
    }
}
