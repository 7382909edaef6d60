//! The one duration syntax of every flag of every command: `500ms`, `30s`, `5m`, `1h`, `1d` or a
//! bare number of seconds (`2.5`). Clap flags use [`parse_duration`] (or [`zero_or_duration`]
//! where 0 means "off"/"no slack"); a command never grows its own parser.

use std::time::Duration;

/// The longest duration any flag takes: a year.
const MAX_SECS: f64 = 365.0 * 86_400.0;

/// Parses a duration flag that must be more than zero (a timeout, an interval).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = zero_or_duration(s)?;
    if d.is_zero() {
        return Err(format!("{:?}: a duration must be more than zero", s.trim()));
    }
    Ok(d)
}

/// Parses a duration flag where `0` is meaningful (e.g. a tolerance).
pub fn zero_or_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{t:?} is not a duration: write e.g. 500ms, 30s, 5m, 1h or 1d"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {t:?}: use ms, s, m, h or d"
            ));
        }
    };
    if !(secs.is_finite() && (0.0..=MAX_SECS).contains(&secs)) {
        return Err(format!("{t:?}: a duration must be at most 365d"));
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
        assert!(parse_duration("400d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(zero_or_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(zero_or_duration("300").unwrap(), Duration::from_secs(300));
    }
}
