//! Maintenance windows: weekly times in a time zone (jiff), or one-off periods. While a window
//! covers a monitor, its checks still run and are recorded but nothing alerts.
//!
//! ```toml
//! [[maintenance]]
//! name = "patch night"
//! monitors = ["db", "prod"]     # monitor names or groups; absent = every monitor
//! timezone = "Europe/Paris"
//! days = ["sun"]                # absent = every day
//! start = "02:00"
//! duration = "2h"
//!
//! [[maintenance]]
//! name = "migration"
//! from = "2026-12-01T22:00:00+01:00"
//! until = "2026-12-02T02:00:00+01:00"
//! ```

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceToml {
    name: Option<String>,
    #[serde(default)]
    monitors: Vec<String>,
    timezone: Option<String>,
    #[serde(default)]
    days: Vec<String>,
    start: Option<String>,
    duration: Option<String>,
    from: Option<String>,
    until: Option<String>,
}

/// When a window is open.
#[derive(Debug, Clone)]
pub enum Schedule {
    Weekly {
        tz: TimeZone,
        days: Vec<Weekday>,
        start: Time,
        duration_s: i64,
    },
    Once {
        from: Timestamp,
        until: Timestamp,
    },
}

/// One maintenance window.
#[derive(Debug, Clone)]
pub struct Maintenance {
    pub name: String,
    /// Monitor names or groups; empty = all.
    pub monitors: Vec<String>,
    pub schedule: Schedule,
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

impl Maintenance {
    /// Checks a `[[maintenance]]` table; the error is `(key, what)`.
    pub(crate) fn build(raw: MaintenanceToml) -> Result<Self, (&'static str, String)> {
        let name = raw.name.unwrap_or_else(|| "maintenance".into());
        let schedule = match (&raw.from, &raw.until, &raw.start) {
            (Some(from), Some(until), None) => {
                let parse = |k: &'static str, s: &str| {
                    s.parse::<Timestamp>().map_err(|e| {
                        (
                            k,
                            format!("{s:?} is not a time with an offset (RFC 3339): {e}"),
                        )
                    })
                };
                let from = parse("from", from)?;
                let until = parse("until", until)?;
                if until <= from {
                    return Err(("until", "must be after `from`".into()));
                }
                if raw.timezone.is_some() || !raw.days.is_empty() || raw.duration.is_some() {
                    return Err((
                        "from",
                        "a one-off window (from/until) takes no timezone, days or duration".into(),
                    ));
                }
                Schedule::Once { from, until }
            }
            (None, None, Some(start)) => {
                let tz_name = raw.timezone.as_deref().unwrap_or("UTC");
                let tz = TimeZone::get(tz_name)
                    .map_err(|e| ("timezone", format!("unknown time zone {tz_name:?}: {e}")))?;
                let start: Time = start
                    .parse()
                    .map_err(|e| ("start", format!("{start:?} is not HH:MM: {e}")))?;
                let duration = raw
                    .duration
                    .as_deref()
                    .ok_or(("duration", "is missing (e.g. \"2h\")".to_string()))?;
                let d = crate::config::parse_duration(duration).map_err(|e| ("duration", e))?;
                if d.as_secs() > 7 * 86400 {
                    return Err(("duration", "a weekly window lasts at most a week".into()));
                }
                let mut days = Vec::new();
                for s in &raw.days {
                    days.push(
                        weekday(s).ok_or(("days", format!("{s:?} is not a day (mon … sun)")))?,
                    );
                }
                Schedule::Weekly {
                    tz,
                    days,
                    start,
                    duration_s: d.as_secs() as i64,
                }
            }
            _ => {
                return Err((
                    "start",
                    "give either start + duration (+ timezone, days) or from + until".into(),
                ));
            }
        };
        Ok(Self {
            name,
            monitors: raw.monitors,
            schedule,
        })
    }

    /// Does this window cover the monitor (by name or group)?
    pub fn applies_to(&self, monitor: &str, group: Option<&str>) -> bool {
        self.monitors.is_empty()
            || self
                .monitors
                .iter()
                .any(|m| m == monitor || Some(m.as_str()) == group)
    }

    /// Is the window open at `now`?
    pub fn is_active(&self, now: Timestamp) -> bool {
        match &self.schedule {
            Schedule::Once { from, until } => *from <= now && now < *until,
            Schedule::Weekly {
                tz,
                days,
                start,
                duration_s,
            } => {
                let today = now.to_zoned(tz.clone()).date();
                // A window that started on one of the previous days may still be open.
                let mut date = today;
                for _ in 0..8 {
                    if (days.is_empty() || days.contains(&date.weekday()))
                        && let Ok(begin) = date.to_datetime(*start).to_zoned(tz.clone())
                    {
                        let b = begin.timestamp().as_second();
                        let n = now.as_second();
                        if b <= n && n < b + duration_s {
                            return true;
                        }
                    }
                    match date.yesterday() {
                        Ok(d) => date = d,
                        Err(_) => break,
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(tz: &str, days: &[&str], start: &str, dur: &str) -> Maintenance {
        Maintenance::build(MaintenanceToml {
            name: None,
            monitors: vec![],
            timezone: Some(tz.into()),
            days: days.iter().map(|s| s.to_string()).collect(),
            start: Some(start.into()),
            duration: Some(dur.into()),
            from: None,
            until: None,
        })
        .unwrap()
    }

    #[test]
    fn weekly_window_in_a_time_zone_across_midnight() {
        // Sunday 23:00 Paris for 2h: open on Monday 00:30 Paris, closed at 01:30.
        let w = weekly("Europe/Paris", &["sun"], "23:00", "2h");
        // 2026-11-29 is a Sunday; Paris is UTC+1 in November.
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(!w.is_active(at("2026-11-29T21:59:00Z")));
        assert!(w.is_active(at("2026-11-29T22:00:00Z")));
        assert!(w.is_active(at("2026-11-29T23:30:00Z")));
        assert!(!w.is_active(at("2026-11-30T00:00:00Z")));
        // Not on a Monday evening.
        assert!(!w.is_active(at("2026-11-30T22:30:00Z")));
    }

    #[test]
    fn bad_windows_are_refused() {
        let e = Maintenance::build(MaintenanceToml {
            name: None,
            monitors: vec![],
            timezone: Some("Mars/Olympus".into()),
            days: vec![],
            start: Some("02:00".into()),
            duration: Some("1h".into()),
            from: None,
            until: None,
        })
        .unwrap_err();
        assert_eq!(e.0, "timezone");
    }
}
