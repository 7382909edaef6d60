//! The status page's two charts, drawn here as inline SVG (no script, no image request): a
//! 30-day uptime bar and a response-time line. Each has a `<title>` and a `<desc>` that say in
//! words what it shows, and every bar its own `<title>` (a tooltip on hover, read by screen
//! readers); colours come from classes in the page's stylesheet, so dark mode applies.

use maud::{Markup, html};
use opskit_monitor::overview::Point;
use opskit_monitor::query::DayBucket;

use super::percent;

const DAY: i64 = 86_400_000;
/// Days in the uptime bar.
pub const DAYS: i64 = 30;

const BAR_W: i64 = 8;
const BAR_GAP: i64 = 2;
const BAR_H: i64 = 30;

/// `2026-11-30`.
fn date(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return "?".to_owned();
    };
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// How a day looks: `up` (at least 99.9 % up), `part` (at least 95 %), `down`, `unknown`
/// (only results that could not judge) or `none` (no result).
pub fn day_class(d: Option<&DayBucket>) -> &'static str {
    match d {
        None => "none",
        Some(d) => match d.uptime {
            None if d.unknown > 0 => "unknown",
            None => "none",
            Some(u) if u >= 99.9 => "up",
            Some(u) if u >= 95.0 => "part",
            Some(_) => "down",
        },
    }
}

fn day_text(day_ms: i64, d: Option<&DayBucket>) -> String {
    match d {
        None => format!("{}: no data", date(day_ms)),
        Some(d) => {
            let checks = d.up + d.down + d.unknown;
            let mut s = format!("{}: {} up", date(day_ms), percent(d.uptime));
            s.push_str(&format!(
                " ({} of {} check{} down",
                d.down,
                checks,
                if checks == 1 { "" } else { "s" }
            ));
            if d.unknown > 0 {
                s.push_str(&format!(", {} unknown", d.unknown));
            }
            s.push(')');
            s
        }
    }
}

/// The last 30 UTC days of `monitor` as bars, oldest on the left.
pub fn uptime_bars(monitor: &str, days: &[DayBucket], now_ms: i64, id: &str) -> Markup {
    let today = now_ms - now_ms.rem_euclid(DAY);
    let first = today - (DAYS - 1) * DAY;
    let slots: Vec<(i64, Option<&DayBucket>)> = (0..DAYS)
        .map(|i| {
            let day = first + i * DAY;
            (day, days.iter().find(|d| d.day_ms == day))
        })
        .collect();
    let with_data = slots.iter().filter(|(_, d)| d.is_some()).count();
    let full = slots
        .iter()
        .filter(|(_, d)| d.and_then(|d| d.uptime).is_some_and(|u| u >= 100.0))
        .count();
    let worst = slots
        .iter()
        .filter_map(|(day, d)| d.and_then(|d| d.uptime).map(|u| (*day, u)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let mut desc =
        format!("{with_data} of the last {DAYS} days have results; {full} of them at 100 % uptime");
    if let Some((day, u)) = worst.filter(|(_, u)| *u < 100.0) {
        desc.push_str(&format!(
            "; the worst, {}, at {}",
            date(day),
            percent(Some(u))
        ));
    }
    desc.push('.');
    let width = DAYS * (BAR_W + BAR_GAP) - BAR_GAP;
    html! {
        svg.bars xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (width) " " (BAR_H)}
            role="img" aria-labelledby={(id) "-t " (id) "-d"} preserveAspectRatio="none" {
            title id={(id) "-t"} { "Uptime of " (monitor) ", last " (DAYS) " days" }
            desc id={(id) "-d"} { (desc) }
            @for (i, (day, d)) in slots.iter().enumerate() {
                rect class=(day_class(*d)) x=(i as i64 * (BAR_W + BAR_GAP)) y="0"
                    width=(BAR_W) height=(BAR_H) rx="1.5" {
                    title { (day_text(*day, *d)) }
                }
            }
        }
    }
}

/// A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

const LINE_W: f64 = 300.0;
const LINE_H: f64 = 60.0;
const TOP: f64 = 10.0;

/// The response times of the last checks as a line; failed checks as red dots on the baseline.
pub fn response_times(monitor: &str, points: &[Point], id: &str) -> Markup {
    let mut times: Vec<f64> = points.iter().filter_map(|p| p.response_time_ms).collect();
    times.sort_by(f64::total_cmp);
    let failed = points.iter().filter(|p| p.status == "down").count();
    let desc = if times.is_empty() {
        "No response times recorded yet.".to_owned()
    } else {
        format!(
            "{} check{}: fastest {:.0} ms, median {:.0} ms, slowest {:.0} ms; {} failed.",
            points.len(),
            if points.len() == 1 { "" } else { "s" },
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
            failed
        )
    };
    let max = nice_max(times.last().copied().unwrap_or(0.0));
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            LINE_W / 2.0
        } else {
            i as f64 * LINE_W / (n - 1) as f64
        }
    };
    let y = |ms: f64| LINE_H - (ms / max).min(1.0) * (LINE_H - TOP);
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.response_time_ms
                .filter(|_| p.status != "down")
                .map(|ms| format!("{:.1},{:.1}", x(i), y(ms)))
        })
        .collect();
    html! {
        svg.line xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (LINE_W) " " (LINE_H)}
            role="img" aria-labelledby={(id) "-t " (id) "-d"} {
            title id={(id) "-t"} { "Response time of " (monitor) }
            desc id={(id) "-d"} { (desc) }
            line x1="0" y1=(TOP) x2=(LINE_W) y2=(TOP) {}
            line x1="0" y1=(LINE_H) x2=(LINE_W) y2=(LINE_H) {}
            text x="2" y=(TOP - 2.0) { (format!("{max:.0} ms")) }
            @if !line.is_empty() {
                polyline points=(line.join(" ")) {}
            }
            @for (i, p) in points.iter().enumerate() {
                @if p.status == "down" {
                    circle cx=(format!("{:.1}", x(i))) cy=(LINE_H - 3.0) r="2.5" {
                        title { (super::utc(p.at_ms)) ": failed" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_max_rounds_up_to_1_2_5() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(450.0), 500.0);
        assert_eq!(nice_max(1000.0), 1000.0);
    }

    fn bucket(day_ms: i64, up: i64, down: i64) -> DayBucket {
        let judged = up + down;
        DayBucket {
            day_ms,
            up,
            down,
            unknown: 0,
            uptime: (judged > 0).then(|| (up as f64 * 10000.0 / judged as f64).round() / 100.0),
            mean_response_time_ms: None,
        }
    }

    #[test]
    fn thirty_bars_each_with_its_day_as_tooltip() {
        let now: i64 = 1_764_510_000_000; // 2025-11-30 13:40 UTC
        let today = now - now.rem_euclid(DAY);
        let days = [bucket(today - DAY, 90, 10), bucket(today, 100, 0)];
        let svg = uptime_bars("api", &days, now, "x").into_string();
        assert_eq!(svg.matches("<rect").count(), 30, "{svg}");
        assert_eq!(svg.matches("class=\"none\"").count(), 28, "{svg}");
        assert!(
            svg.contains("<title>2025-11-29: 90.00 % up (10 of 100 checks down)</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>2025-11-30: 100 % up (0 of 100 checks down)</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("2 of the last 30 days have results; 1 of them at 100 % uptime; the worst, 2025-11-29, at 90.00 %."),
            "{svg}"
        );
        assert!(svg.contains("role=\"img\""), "{svg}");
    }

    #[test]
    fn failed_checks_are_dots_and_the_summary_says_so() {
        let p = |at_ms, status: &str, rt| Point {
            at_ms,
            status: status.to_owned(),
            response_time_ms: rt,
        };
        let pts = [
            p(1, "up", Some(10.0)),
            p(2, "up", Some(30.0)),
            p(3, "down", Some(5.0)),
            p(4, "up", Some(20.0)),
        ];
        let svg = response_times("api", &pts, "r").into_string();
        assert!(
            svg.contains("4 checks: fastest 5 ms, median 20 ms, slowest 30 ms; 1 failed."),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(
            svg.contains("50 ms"),
            "the axis is rounded up to 50 ms: {svg}"
        );
        let empty = response_times("api", &[], "r").into_string();
        assert!(empty.contains("No response times recorded yet."), "{empty}");
        assert!(!empty.contains("<polyline"), "{empty}");
    }
}
