//! The one duration syntax of opskit: `500ms`, `30s`, `5m`, `1h`, `1d` or a bare number of
//! seconds (`2.5`), used by every flag of every command (the binary's clap flags), the http
//! profiles and the monitor's configuration. Nothing else in the workspace parses a duration.
//!
//! ```
//! use std::time::Duration;
//! use opskit_http::duration::parse_duration;
//! assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
//! assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
//! assert!(parse_duration("3 weeks").is_err());
//! ```

use std::time::Duration;

/// The longest duration the syntax takes (a setting may allow less): 400 days, so a year of
/// retention plus slack fits.
const MAX_SECS: f64 = 400.0 * 86_400.0;

/// Parses a duration that must be more than zero (a timeout, an interval).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = zero_or_duration(s)?;
    if d.is_zero() {
        return Err(format!("{:?}: a duration must be more than zero", s.trim()));
    }
    Ok(d)
}

/// Parses a duration where `0` is meaningful (e.g. a tolerance). Parts add up, largest unit
/// first as people write them: `1m30s`, `1h30m`, `2d12h`.
pub fn zero_or_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let not_a_duration =
        || format!("{t:?} is not a duration: write e.g. 500ms, 30s, 5m, 1h30m or 1d");
    let mut rest = t;
    let mut secs = 0.0_f64;
    let mut parts = 0;
    while parts == 0 || !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(split);
        let n: f64 = num.parse().map_err(|_| not_a_duration())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit.trim() {
            // a bare number of seconds stands alone: "1m30" is a typo, not 90 s
            "" if parts == 0 && after.is_empty() => 1.0,
            "s" | "sec" | "secs" => 1.0,
            "ms" => 0.001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => return Err(not_a_duration()),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {t:?}: use ms, s, m, h or d"
                ));
            }
        };
        secs += n * scale;
        parts += 1;
        rest = after;
    }
    if !(secs.is_finite() && (0.0..=MAX_SECS).contains(&secs)) {
        return Err(format!("{t:?}: a duration must be at most 400d"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, zero_or_duration};
    use std::time::Duration;

    #[test]
    fn one_syntax() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("5min").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("401d").is_err());
        assert!(parse_duration("400d").is_ok());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2d12h").unwrap(),
            Duration::from_secs(216_000)
        );
        assert_eq!(
            parse_duration("1s500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("1m30").is_err());
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("1mx").is_err());
        assert_eq!(zero_or_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(zero_or_duration("300").unwrap(), Duration::from_secs(300));
    }
}
