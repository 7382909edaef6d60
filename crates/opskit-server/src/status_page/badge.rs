//! Shields.io-style "flat" badges (`label | value`) as SVG, for READMEs and dashboards:
//! `GET /api/v1/monitors/{name}/badge.svg` (state) and `?type=uptime&window=…` (uptime).

use maud::html;

/// Colours of shields.io's palette.
pub const GREEN: &str = "#4c1";
pub const YELLOWGREEN: &str = "#a4a61d";
pub const YELLOW: &str = "#dfb317";
pub const ORANGE: &str = "#fe7d37";
pub const RED: &str = "#e05d44";
pub const GREY: &str = "#9f9f9f";

/// The badge of a monitor's state: `name | up` (green), `down` (red), `unknown` or `pending`
/// (grey).
pub fn state(monitor: &str, status: Option<&str>) -> String {
    let (value, colour) = match status {
        Some("up") => ("up", GREEN),
        Some("down") => ("down", RED),
        Some("unknown") => ("unknown", GREY),
        _ => ("pending", GREY),
    };
    render(monitor, value, colour)
}

/// The badge of an uptime percentage: green from 99.9 %, then yellow-green (99 %), yellow
/// (95 %), orange (90 %), red.
pub fn uptime(label: &str, pct: Option<f64>) -> String {
    match pct {
        None => render(label, "no data", GREY),
        Some(p) => {
            let colour = if p >= 99.9 {
                GREEN
            } else if p >= 99.0 {
                YELLOWGREEN
            } else if p >= 95.0 {
                YELLOW
            } else if p >= 90.0 {
                ORANGE
            } else {
                RED
            };
            let value = if p >= 100.0 {
                "100%".to_owned()
            } else {
                format!("{p:.2}%")
            };
            render(label, &value, colour)
        }
    }
}

/// Approximate advance width of a character in 11 px Verdana (the badges' font), in pixels.
fn char_width(c: char) -> f64 {
    match c {
        'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 3.5,
        ' ' | 'f' | 't' | 'r' | 'I' | '(' | ')' | '[' | ']' | '-' | '/' => 4.6,
        'm' | 'w' | 'M' | 'W' | '%' | '@' => 10.5,
        'A'..='Z' | '#' | '&' => 7.6,
        '0'..='9' | '$' | '?' | '_' | '<' | '>' | '=' | '+' | '~' => 7.0,
        c if c.is_ascii() => 6.6,
        _ => 8.0,
    }
}

/// Text width in pixels.
pub fn text_width(s: &str) -> f64 {
    s.chars().map(char_width).sum()
}

/// Longest label kept whole (a longer one is cut with an ellipsis).
const MAX_LABEL: usize = 60;

fn render(label: &str, value: &str, colour: &str) -> String {
    let label: String = if label.chars().count() > MAX_LABEL {
        label.chars().take(MAX_LABEL - 1).chain(['…']).collect()
    } else {
        label.to_owned()
    };
    let lw = (text_width(&label) + 10.0).round() as i64;
    let vw = (text_width(value) + 10.0).round() as i64;
    let w = lw + vw;
    let aria = format!("{label}: {value}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height="20" role="img" aria-label=(aria) {
            title { (aria) }
            linearGradient id="s" x2="0" y2="100%" {
                stop offset="0" stop-color="#bbb" stop-opacity=".1" {}
                stop offset="1" stop-opacity=".1" {}
            }
            clipPath id="r" { rect width=(w) height="20" rx="3" fill="#fff" {} }
            g clip-path="url(#r)" {
                rect width=(lw) height="20" fill="#555" {}
                rect x=(lw) width=(vw) height="20" fill=(colour) {}
                rect width=(w) height="20" fill="url(#s)" {}
            }
            g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"
                font-size="11" {
                text x=(lw as f64 / 2.0) y="15" fill="#010101" fill-opacity=".3" { (label) }
                text x=(lw as f64 / 2.0) y="14" { (label) }
                text x=(lw as f64 + vw as f64 / 2.0) y="15" fill="#010101" fill-opacity=".3" { (value) }
                text x=(lw as f64 + vw as f64 / 2.0) y="14" { (value) }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_badges_say_the_state_in_its_colour() {
        let up = state("api", Some("up"));
        assert!(
            up.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{up}"
        );
        assert!(up.contains("aria-label=\"api: up\""), "{up}");
        assert!(up.contains(GREEN), "{up}");
        let down = state("api", Some("down"));
        assert!(
            down.contains(">down</text>") && down.contains(RED),
            "{down}"
        );
        assert!(state("api", None).contains(">pending</text>"));
    }

    #[test]
    fn uptime_colours_follow_the_thresholds() {
        assert!(uptime("uptime 24h", Some(100.0)).contains(">100%</text>"));
        assert!(uptime("uptime 24h", Some(99.95)).contains(GREEN));
        assert!(uptime("uptime 24h", Some(99.5)).contains(YELLOWGREEN));
        assert!(uptime("uptime 24h", Some(97.0)).contains(YELLOW));
        assert!(uptime("uptime 24h", Some(91.0)).contains(ORANGE));
        let bad = uptime("uptime 24h", Some(42.123));
        assert!(bad.contains(RED) && bad.contains(">42.12%</text>"), "{bad}");
        assert!(uptime("uptime 7d", None).contains(">no data</text>"));
    }

    #[test]
    fn a_hostile_name_is_text_in_the_svg() {
        let b = state("<script>alert(1)</script>\"&", Some("up"));
        assert!(!b.contains("<script>"), "{b}");
        assert!(
            b.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;"),
            "{b}"
        );
    }

    #[test]
    fn a_long_name_is_cut_and_wider_text_makes_a_wider_badge() {
        let long = "x".repeat(500);
        let b = state(&long, Some("up"));
        assert!(b.contains('…') && !b.contains(&"x".repeat(61)), "{b}");
        assert!(text_width("WWWW") > text_width("iiii"));
    }
}
