//! The status page (`GET /status`) and the monitor badges, rendered on the server: HTML from
//! [`maud`] (every value escaped), charts as inline SVG drawn here, one inline stylesheet allowed
//! by its hash in the Content-Security-Policy, no script and no request to anywhere else.
//!
//! Rendering only: [`crate::routes::status`] reads the data ([`opskit_monitor::overview`]) and
//! answers.

pub mod badge;
pub mod charts;

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use maud::{DOCTYPE, Markup, html};
use opskit_monitor::overview::{IncidentSummary, MonitorOverview};
use sha2::{Digest as _, Sha256};

/// Seconds between automatic reloads (`<meta http-equiv="refresh">`, no script).
pub const REFRESH_SECS: u32 = 60;

/// Results per monitor in the response-time chart.
pub const CHART_POINTS: u32 = 60;

/// The page's only stylesheet. Its SHA-256 is in the CSP ([`CSP`]): change a byte and the hash
/// follows, because both come from this constant.
pub const STYLESHEET: &str = r#"
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#5b6470;--line:#d9dde3;--up:#1f883d;--down:#cf222e;--unknown:#8c959f;--none:#e4e7eb;--part:#d4a72c;--accent:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--up:#3fb950;--down:#f85149;--unknown:#6e7681;--none:#2d333b;--part:#d29922;--accent:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}
header{padding-top:1.5rem}
h1{font-size:1.6rem;margin:0 0 .25rem}
h2{font-size:1.15rem;margin:1.75rem 0 .6rem}
h3{font-size:1rem;margin:0;overflow-wrap:anywhere}
.overall{display:inline-block;padding:.35rem .75rem;border-radius:.4rem;font-weight:600;color:#fff;background:var(--up)}
.overall.down{background:var(--down)}
.overall.unknown{background:var(--unknown)}
.meta,.since,.muted{color:var(--muted);font-size:.85rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.8rem 1rem;margin:0 0 .75rem}
.head{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem .75rem}
.state{font-weight:600;font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;padding:.1rem .45rem;border-radius:.3rem;color:#fff;background:var(--unknown)}
.state.up{background:var(--up)}
.state.down{background:var(--down)}
.uptime{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;margin:.5rem 0}
.uptime div{display:flex;gap:.35rem;align-items:baseline}
.uptime dt{color:var(--muted);font-size:.8rem}
.uptime dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:.5rem 1.25rem}
@media (max-width:40rem){.charts{grid-template-columns:1fr}}
figure{margin:0}
figcaption{color:var(--muted);font-size:.78rem;margin-bottom:.2rem}
svg.bars,svg.line{display:block;width:100%;height:auto}
.bars rect{fill:var(--none)}
.bars rect.up{fill:var(--up)}
.bars rect.part{fill:var(--part)}
.bars rect.down{fill:var(--down)}
.bars rect.unknown{fill:var(--unknown)}
.line polyline{fill:none;stroke:var(--accent);stroke-width:1.5;vector-effect:non-scaling-stroke}
.line line{stroke:var(--line);stroke-width:1;vector-effect:non-scaling-stroke}
.line circle{fill:var(--down)}
.line text{fill:var(--muted);font-size:9px}
.incident{border-left:4px solid var(--down)}
.incident.resolved{border-left-color:var(--up)}
code{font:.85em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--none);padding:.05rem .3rem;border-radius:.25rem;overflow-wrap:anywhere}
ul.plain{list-style:none;margin:0;padding:0}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
footer{padding:1.5rem 1rem 2rem;color:var(--muted);font-size:.8rem}
"#;

/// `'sha256-…'` of [`STYLESHEET`], as the CSP names it.
pub static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(STYLESHEET.as_bytes()))
    )
});

/// The Content-Security-Policy of the status page: nothing may load or run but the one
/// stylesheet above.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        *STYLE_HASH
    )
});

/// One monitor as configured, with what the database knows of it.
#[derive(Debug, Clone)]
pub struct MonitorView<'a> {
    pub name: &'a str,
    /// `http`, `tcp`, … (the check kind; the target itself is not shown: it may name internal
    /// hosts).
    pub kind: &'a str,
    /// `None` until its first check.
    pub data: Option<&'a MonitorOverview>,
}

/// Monitors under one heading.
#[derive(Debug, Clone)]
pub struct GroupView<'a> {
    /// `None`: monitors without a group.
    pub name: Option<&'a str>,
    pub monitors: Vec<MonitorView<'a>>,
}

/// Everything on the page.
#[derive(Debug, Clone)]
pub struct PageView<'a> {
    pub now_ms: i64,
    pub groups: Vec<GroupView<'a>>,
    pub open: &'a [IncidentSummary],
    pub resolved: &'a [IncidentSummary],
    /// `false` on a follower replica: checks run elsewhere, the data is the leader's.
    pub leader: bool,
}

/// `2026-11-30 14:02 UTC`.
pub fn utc(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return "?".to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => {
            let m = (s % 3600) / 60;
            if m == 0 {
                format!("{} h", s / 3600)
            } else {
                format!("{} h {} min", s / 3600, m)
            }
        }
        _ => {
            let h = (s % 86_400) / 3600;
            if h == 0 {
                format!("{} d", s / 86_400)
            } else {
                format!("{} d {} h", s / 86_400, h)
            }
        }
    }
}

/// `0.4 ms`, `12 ms`, `1250 ms`.
pub fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// `99.95 %`, or `no data`.
pub fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p >= 100.0 => "100 %".to_owned(),
        Some(p) => format!("{p:.2} %"),
        None => "no data".to_owned(),
    }
}

fn state_label(status: &str) -> &'static str {
    match status {
        "up" => "Up",
        "down" => "Down",
        "unknown" => "Unknown",
        _ => "Pending",
    }
}

fn state_class(status: &str) -> &'static str {
    match status {
        "up" => "up",
        "down" => "down",
        _ => "unknown",
    }
}

/// The status page.
pub fn render(page: &PageView<'_>) -> String {
    let all: Vec<&MonitorView<'_>> = page.groups.iter().flat_map(|g| &g.monitors).collect();
    let down = all
        .iter()
        .filter(|m| m.data.is_some_and(|d| d.status == "down"))
        .count();
    let unknown = all
        .iter()
        .filter(|m| {
            m.data
                .is_none_or(|d| d.status != "up" && d.status != "down")
        })
        .count();
    let (overall, overall_class) = if all.is_empty() {
        ("No monitors configured".to_owned(), "unknown")
    } else if down > 0 {
        (
            format!(
                "{down} of {} monitor{} down",
                all.len(),
                if all.len() == 1 { "" } else { "s" }
            ),
            "down",
        )
    } else if unknown == all.len() {
        ("Waiting for the first checks".to_owned(), "unknown")
    } else {
        ("All monitors up".to_owned(), "up")
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content=(REFRESH_SECS);
                meta name="color-scheme" content="light dark";
                title { "Status · " (overall) }
                style { (maud::PreEscaped(STYLESHEET)) }
            }
            body {
                header {
                    h1 { "Status" }
                    p { span.overall.(overall_class) role="status" { (overall) } }
                    p.meta {
                        "Updated " (utc(page.now_ms)) " · reloads every " (REFRESH_SECS) " s"
                        @if !page.leader { " · served by a standby replica" }
                    }
                }
                main {
                    (incidents("Open incidents", "open-incidents", page.open, page.now_ms))
                    @for (gi, group) in page.groups.iter().enumerate() {
                        section aria-labelledby={"group-" (gi)} {
                            h2 id={"group-" (gi)} { (group.name.unwrap_or("Other monitors")) }
                            @for (mi, m) in group.monitors.iter().enumerate() {
                                (monitor(m, &format!("m{gi}-{mi}"), page.now_ms))
                            }
                        }
                    }
                    @if all.is_empty() {
                        p.card { "This server runs the monitor, but no monitor is configured yet." }
                    }
                    (incidents("Recently resolved", "resolved-incidents", page.resolved, page.now_ms))
                }
                footer { "opskit " (env!("CARGO_PKG_VERSION")) " · times in UTC" }
            }
        }
    };
    markup.into_string()
}

fn monitor(m: &MonitorView<'_>, id: &str, now_ms: i64) -> Markup {
    let title_id = format!("{id}-name");
    html! {
        article.card aria-labelledby=(title_id) {
            div.head {
                h3 id=(title_id) { (m.name) }
                @match m.data {
                    Some(d) => {
                        span.state.(state_class(&d.status)) { (state_label(&d.status)) }
                        span.since {
                            @if let Some(since) = d.since_ms {
                                "since " (utc(since)) " (" (span(now_ms - since)) ")"
                            }
                            " · last check " (span(now_ms - d.last_check_ms)) " ago"
                            @if let Some(rt) = d.last_response_time_ms { " · " (ms(rt)) }
                        }
                    }
                    None => {
                        span.state.unknown { "Pending" }
                        span.since { "not checked yet" }
                    }
                }
                span.muted { (m.kind) }
            }
            @if let Some(d) = m.data {
                @if d.status == "down" {
                    @if let Some(reason) = &d.last_reason { p.muted { (reason) } }
                }
                dl.uptime aria-label="Uptime" {
                    div { dt { "24 hours" } dd { (percent(d.uptime_24h)) } }
                    div { dt { "7 days" } dd { (percent(d.uptime_7d)) } }
                    div { dt { "30 days" } dd { (percent(d.uptime_30d)) } }
                }
                div.charts {
                    figure {
                        figcaption id={(id) "-bars-cap"} { "Uptime, last 30 days" }
                        (charts::uptime_bars(m.name, &d.days, now_ms, &format!("{id}-bars")))
                    }
                    figure {
                        figcaption id={(id) "-rt-cap"} {
                            "Response time, last " (d.recent.len()) " check" @if d.recent.len() != 1 { "s" }
                        }
                        (charts::response_times(m.name, &d.recent, &format!("{id}-rt")))
                    }
                }
            }
        }
    }
}

fn incidents(title: &str, id: &str, list: &[IncidentSummary], now_ms: i64) -> Markup {
    html! {
        @if !list.is_empty() {
            section aria-labelledby=(id) {
                h2 id=(id) { (title) }
                ul.plain {
                    @for i in list {
                        li.card.incident.resolved[i.resolved_ms.is_some()] {
                            div.head {
                                h3 { (i.monitor) }
                                @match i.resolved_ms {
                                    Some(r) => span.since {
                                        "down " (utc(i.started_ms)) " → resolved " (utc(r))
                                        " (" (span(r - i.started_ms)) ")"
                                    },
                                    None => span.since {
                                        "down since " (utc(i.started_ms)) " (" (span(now_ms - i.started_ms)) ")"
                                    },
                                }
                            }
                            @if let Some(c) = &i.condition {
                                p {
                                    "Failed condition: " code { (c) }
                                    // a plain false is only the condition's own verdict
                                    @if let Some(got) = i.got.as_ref().filter(|g| !g.is_boolean()) {
                                        " — got " code { (got_text(got)) }
                                    }
                                }
                            }
                            @if let Some(r) = &i.reason {
                                p.muted { (r) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A seen value: strings without their JSON quotes.
fn got_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The plain page shown when there is no status to show (the monitor is off), or to a browser
/// that must log in first.
pub fn notice(title: &str, text: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (maud::PreEscaped(STYLESHEET)) }
            }
            body {
                header { h1 { (title) } }
                main { p.card { (text) } }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opskit_monitor::overview::Point;
    use opskit_monitor::query::DayBucket;

    const NOW: i64 = 1_764_510_000_000; // 2025-11-30 13:40 UTC

    fn overview(status: &str) -> MonitorOverview {
        let today = NOW - NOW.rem_euclid(86_400_000);
        MonitorOverview {
            status: status.to_owned(),
            since_ms: Some(NOW - 3_720_000),
            last_check_ms: NOW - 5_000,
            last_reason: (status == "down").then(|| "<b>connection refused</b>".to_owned()),
            last_response_time_ms: Some(12.4),
            uptime_24h: Some(99.5),
            uptime_7d: Some(99.93),
            uptime_30d: None,
            days: vec![DayBucket {
                day_ms: today,
                up: 199,
                down: 1,
                unknown: 0,
                uptime: Some(99.5),
                mean_response_time_ms: Some(12.0),
            }],
            recent: vec![Point {
                at_ms: NOW - 5_000,
                status: status.to_owned(),
                response_time_ms: Some(12.4),
            }],
        }
    }

    fn incident(monitor: &str, condition: &str, resolved: Option<i64>) -> IncidentSummary {
        IncidentSummary {
            id: "i1".into(),
            monitor: monitor.into(),
            started_ms: NOW - 600_000,
            resolved_ms: resolved,
            reason: Some("reason".into()),
            condition: Some(condition.into()),
            got: Some(serde_json::json!("<img src=x onerror=alert(1)>")),
        }
    }

    #[test]
    fn hostile_names_groups_and_conditions_are_text() {
        let up = overview("up");
        let down = overview("down");
        let open = [incident(
            "<script>alert('m')</script>",
            "[STATUS] == 200 </code><script>alert(2)</script>",
            None,
        )];
        let html = render(&PageView {
            now_ms: NOW,
            groups: vec![GroupView {
                name: Some("<script>alert('g')</script>"),
                monitors: vec![
                    MonitorView {
                        name: "<script>alert('m')</script>",
                        kind: "http",
                        data: Some(&down),
                    },
                    MonitorView {
                        name: "a\"b' & <i>",
                        kind: "tcp",
                        data: Some(&up),
                    },
                ],
            }],
            open: &open,
            resolved: &[],
            leader: true,
        });
        // the only tags are ours: no script, no injected element or attribute
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("<i>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert('m')&lt;/script&gt;"),
            "the monitor name is shown as text: {html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert('g')&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("[STATUS] == 200 &lt;/code&gt;&lt;script&gt;alert(2)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("a&quot;b' &amp; &lt;i&gt;"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b&gt;connection refused&lt;/b&gt;"),
            "{html}"
        );
        // the name inside the charts' titles is escaped too
        assert!(
            html.contains(
                ">Uptime of &lt;script&gt;alert('m')&lt;/script&gt;, last 30 days</title>"
            ),
            "{html}"
        );
    }

    #[test]
    fn the_page_says_what_a_user_needs_to_know() {
        let up = overview("up");
        let down = overview("down");
        let resolved = [incident("web", "[STATUS] == 200", Some(NOW - 60_000))];
        let open = [incident("db", "[CONNECTED] == true", None)];
        let html = render(&PageView {
            now_ms: NOW,
            groups: vec![
                GroupView {
                    name: Some("Core"),
                    monitors: vec![
                        MonitorView {
                            name: "web",
                            kind: "http",
                            data: Some(&up),
                        },
                        MonitorView {
                            name: "db",
                            kind: "tcp",
                            data: Some(&down),
                        },
                    ],
                },
                GroupView {
                    name: None,
                    monitors: vec![MonitorView {
                        name: "new",
                        kind: "dns",
                        data: None,
                    }],
                },
            ],
            open: &open,
            resolved: &resolved,
            leader: false,
        });
        for needle in [
            "<meta http-equiv=\"refresh\" content=\"60\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "1 of 3 monitors down",
            "<h2 id=\"group-0\">Core</h2>",
            "Other monitors",
            "Open incidents",
            "Recently resolved",
            "Failed condition: <code>[CONNECTED] == true</code>",
            "since 2025-11-30 12:38 UTC (1 h 2 min)",
            "99.50 %",
            "99.93 %",
            "no data",
            "not checked yet",
            "served by a standby replica",
        ] {
            assert!(html.contains(needle), "missing {needle:?} in {html}");
        }
        // exactly one stylesheet, the one whose hash the CSP carries
        assert_eq!(html.matches("<style>").count(), 1);
        assert!(html.contains(&format!("<style>{STYLESHEET}</style>")));
        assert!(
            !html.contains(" style="),
            "no inline style attribute: {html}"
        );
        assert!(
            !html.contains("http://")
                || !html
                    .replace("http://www.w3.org/2000/svg", "")
                    .contains("http://")
        );
        assert!(!html.contains("https://"), "{html}");
    }

    #[test]
    fn the_csp_carries_the_stylesheet_hash() {
        let digest = Sha256::digest(STYLESHEET.as_bytes());
        let expected = format!(
            "default-src 'none'; style-src 'sha256-{}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            STANDARD.encode(digest)
        );
        assert_eq!(*CSP, expected);
        assert!(!CSP.contains("unsafe-inline"));
    }

    #[test]
    fn spans_and_percentages_read_well() {
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(12 * 60_000), "12 min");
        assert_eq!(span(3 * 3_600_000), "3 h");
        assert_eq!(span(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
        assert_eq!(percent(Some(100.0)), "100 %");
        assert_eq!(percent(Some(99.954)), "99.95 %");
        assert_eq!(percent(None), "no data");
        assert_eq!(utc(NOW), "2025-11-30 13:40 UTC");
        assert_eq!(ms(0.44), "0.4 ms");
        assert_eq!(ms(1250.2), "1250 ms");
    }
}
