//! Points in time as people write them on a command line: `now`, relative to now (`-1h`,
//! `now-30m`, `now+5m`), RFC 3339 (`2026-11-30T14:00:00Z`) or Unix seconds (`1796050141.5`).
//! Durations use the one syntax of opskit ([`opskit_http::duration`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch (what Prometheus and most APIs take).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Parses `text` as a point in time relative to `now` (Unix seconds); the error says what is
/// accepted.
pub fn parse_time(text: &str, now: f64) -> Result<f64, String> {
    let t = text.trim();
    let bad = |why: String| {
        format!(
            "{t:?} is not a time{why}: write now, -1h or now-1h (relative), \
             2026-11-30T14:00:00Z (RFC 3339) or Unix seconds"
        )
    };
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    let relative = t
        .strip_prefix("now")
        .map(str::trim_start)
        .filter(|r| r.starts_with(['-', '+']))
        .or_else(|| t.strip_prefix('-').map(|_| t));
    if let Some(rel) = relative {
        let (sign, amount) = match rel.split_at(1) {
            ("+", a) => (1.0, a),
            (_, a) => (-1.0, a),
        };
        let d = opskit_http::duration::parse_duration(amount.trim())
            .map_err(|e| bad(format!(" ({e})")))?;
        return Ok(now + sign * d.as_secs_f64());
    }
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(secs);
        }
        return Err(bad(String::new()));
    }
    OffsetDateTime::parse(t, &Rfc3339)
        .map(|dt| dt.unix_timestamp_nanos() as f64 / 1e9)
        .map_err(|e| bad(format!(" ({e})")))
}

/// A Unix time as RFC 3339 in UTC with milliseconds (`2026-11-30T14:49:01.868Z`).
pub fn rfc3339(unix: f64) -> String {
    if !unix.is_finite() {
        return unix.to_string();
    }
    let nanos = (unix * 1e9).round() as i128;
    let Ok(dt) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return unix.to_string();
    };
    let ms = dt.millisecond();
    let secs = dt.replace_nanosecond(0).unwrap_or(dt);
    let base = secs.format(&Rfc3339).unwrap_or_else(|_| unix.to_string());
    match (ms, base.strip_suffix('Z')) {
        (0, _) | (_, None) => base,
        (ms, Some(stem)) => format!("{stem}.{ms:03}Z"),
    }
}

/// A duration as Prometheus takes it: float seconds (`60`, `0.5`).
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_absolute_and_unix_times() {
        let now = 1_796_050_000.0;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-1h", now).unwrap(), now - 3600.0);
        assert_eq!(parse_time("now-30m", now).unwrap(), now - 1800.0);
        assert_eq!(parse_time("now - 1h30m", now).unwrap(), now - 5400.0);
        assert_eq!(parse_time("now+5m", now).unwrap(), now + 300.0);
        assert_eq!(parse_time("1796050141.5", now).unwrap(), 1_796_050_141.5);
        assert_eq!(
            parse_time("2026-11-30T14:00:00Z", now).unwrap(),
            1_796_047_200.0
        );
        assert_eq!(
            parse_time("2026-11-30T15:00:00+01:00", now).unwrap(),
            1_796_047_200.0
        );
        for bad in [
            "yesterday",
            "-soon",
            "now-",
            "2026-13-01T00:00:00Z",
            "NaN",
            "-inf",
        ] {
            let e = parse_time(bad, now).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(1_796_047_200.0), "2026-11-30T14:00:00Z");
        assert_eq!(rfc3339(1_796_047_200.868), "2026-11-30T14:00:00.868Z");
        assert_eq!(seconds(Duration::from_secs(60)), "60");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    }
}
