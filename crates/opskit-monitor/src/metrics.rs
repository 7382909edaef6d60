//! `/metrics` of `opskit monitor run`: the Prometheus text exposition format (version 0.0.4).
//!
//! Per monitor (labels `monitor`, and `group`/`kind` on `opskit_monitor_up`):
//! - `opskit_monitor_up` gauge: 1 when the last result was up, else 0;
//! - `opskit_monitor_state` gauge: 1 for the current state among `up`, `down`, `unknown`;
//! - `opskit_monitor_last_check_duration_seconds` gauge: latency of the last check;
//! - `opskit_monitor_consecutive_failures` gauge (the alert state machine's count: `unknown`
//!   results and results inside a maintenance window change nothing);
//! - `opskit_monitor_checks_total{result}` counter;
//! - `opskit_monitor_check_duration_seconds` histogram.
//!
//! Scheduler-wide: `opskit_monitor_schedule_lateness_seconds` summary (quantiles 0.5, 0.9, 0.99
//! of how late checks started after they were due), `opskit_monitor_checks_skipped_total` (a
//! check came due while the previous one still ran), `opskit_monitor_record_errors_total`,
//! `opskit_monitor_monitors`.
//!
//! Counters start at zero when the daemon starts; the gauges are seeded from the database, so
//! a restart during an incident still shows the monitor down.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use sqlx::Row as _;

use crate::check::{Report, Status};
use crate::config::Config;
use crate::scheduler::Stats;
use crate::store::Db;

/// Upper bounds of the latency histogram, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What the metrics know of one monitor.
#[derive(Debug, Clone, Default)]
struct Series {
    status: Option<Status>,
    last_latency_s: Option<f64>,
    consecutive_failures: u64,
    /// up, down, unknown.
    results: [u64; 3],
    buckets: [u64; BUCKETS.len()],
    sum_s: f64,
    count: u64,
}

/// Per-monitor series, fed by the scheduler after each recorded check.
#[derive(Debug, Default)]
pub struct Registry {
    series: Mutex<HashMap<String, Series>>,
}

impl Registry {
    /// Counts one recorded result.
    pub fn observe(&self, monitor: &str, report: &Report, in_maintenance: bool) {
        let Ok(mut map) = self.series.lock() else {
            return;
        };
        let s = map.entry(monitor.to_string()).or_default();
        let secs = report.response_time_ms.max(0.0) / 1000.0;
        s.status = Some(report.status);
        s.last_latency_s = Some(secs);
        let i = match report.status {
            Status::Up => 0,
            Status::Down => 1,
            Status::Unknown => 2,
        };
        s.results[i] += 1;
        if !in_maintenance {
            match report.status {
                Status::Up => s.consecutive_failures = 0,
                Status::Down => s.consecutive_failures += 1,
                Status::Unknown => {}
            }
        }
        for (b, le) in s.buckets.iter_mut().zip(BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
        s.sum_s += secs;
        s.count += 1;
    }

    /// Sets the state of `monitor` as the database knows it (at start).
    pub fn seed(
        &self,
        monitor: &str,
        status: Status,
        consecutive_failures: u64,
        latency_ms: Option<f64>,
    ) {
        if let Ok(mut map) = self.series.lock() {
            let s = map.entry(monitor.to_string()).or_default();
            s.status = Some(status);
            s.consecutive_failures = consecutive_failures;
            s.last_latency_s = latency_ms.map(|ms| ms / 1000.0);
        }
    }

    /// Seeds every monitor's state from the database.
    pub async fn seed_from(&self, db: &Db) -> crate::Result<()> {
        let rows = sqlx::query(
            "SELECT monitor, status, consecutive_failures, last_response_time_ms FROM monitor_state",
        )
        .fetch_all(&db.pool)
        .await?;
        for r in rows {
            let name: String = r.get(0);
            let status: String = r.get(1);
            let fails: i64 = r.get(2);
            let lat: Option<f64> = r.get(3);
            self.seed(&name, Status::parse(&status), fails.max(0) as u64, lat);
        }
        Ok(())
    }
}

/// A label value escaped for the text format: `\`, `"` and newlines.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as the text format writes it.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Lateness quantiles (seconds), sum and count, from one sorted copy of the sample (the
/// quantile is [`Stats::lateness_quantile`]'s).
fn lateness(stats: &Stats, qs: &[f64]) -> (Vec<Option<f64>>, f64, usize) {
    let mut v = match stats.lateness_ms.lock() {
        Ok(l) => l.clone(),
        Err(_) => Vec::new(),
    };
    v.sort_by(f32::total_cmp);
    let sum: f64 = v.iter().map(|x| f64::from(*x)).sum::<f64>() / 1000.0;
    let q = qs
        .iter()
        .map(|q| {
            if v.is_empty() {
                return None;
            }
            let i = ((v.len() - 1) as f64 * q).round() as usize;
            Some(f64::from(v[i.min(v.len() - 1)]) / 1000.0)
        })
        .collect();
    (q, sum, v.len())
}

/// The whole exposition for the monitors of `config`.
pub fn render(config: &Config, stats: &Stats) -> String {
    let mut o = String::new();
    let map = stats
        .monitors
        .series
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let empty = Series::default();
    let rows: Vec<(String, &crate::config::Monitor, &Series)> = config
        .monitors
        .iter()
        .map(|m| (escape_label(&m.name), m, map.get(&m.name).unwrap_or(&empty)))
        .collect();

    let _ = writeln!(
        o,
        "# HELP opskit_monitor_up 1 when the last check was up, else 0."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_up gauge");
    for (n, m, s) in &rows {
        let _ = writeln!(
            o,
            "opskit_monitor_up{{monitor=\"{n}\",group=\"{}\",kind=\"{}\"}} {}",
            escape_label(m.group.as_deref().unwrap_or("")),
            m.check.kind(),
            u8::from(s.status == Some(Status::Up))
        );
    }
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_state Current state of each monitor (1 for the state it is in)."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_state gauge");
    for (n, _, s) in &rows {
        for st in [Status::Up, Status::Down, Status::Unknown] {
            let _ = writeln!(
                o,
                "opskit_monitor_state{{monitor=\"{n}\",state=\"{}\"}} {}",
                st.as_str(),
                u8::from(s.status == Some(st))
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_last_check_duration_seconds Latency of the last check."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_last_check_duration_seconds gauge");
    for (n, _, s) in &rows {
        if let Some(l) = s.last_latency_s {
            let _ = writeln!(
                o,
                "opskit_monitor_last_check_duration_seconds{{monitor=\"{n}\"}} {}",
                num(l)
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_consecutive_failures Down results in a row (unknown and maintenance results do not count)."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_consecutive_failures gauge");
    for (n, _, s) in &rows {
        let _ = writeln!(
            o,
            "opskit_monitor_consecutive_failures{{monitor=\"{n}\"}} {}",
            s.consecutive_failures
        );
    }
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_checks_total Checks recorded since the daemon started, by result."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_checks_total counter");
    for (n, _, s) in &rows {
        for (i, r) in ["up", "down", "unknown"].iter().enumerate() {
            let _ = writeln!(
                o,
                "opskit_monitor_checks_total{{monitor=\"{n}\",result=\"{r}\"}} {}",
                s.results[i]
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_check_duration_seconds Latency of the checks since the daemon started."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_check_duration_seconds histogram");
    for (n, _, s) in &rows {
        for (b, le) in s.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                o,
                "opskit_monitor_check_duration_seconds_bucket{{monitor=\"{n}\",le=\"{}\"}} {b}",
                num(le)
            );
        }
        let _ = writeln!(
            o,
            "opskit_monitor_check_duration_seconds_bucket{{monitor=\"{n}\",le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(
            o,
            "opskit_monitor_check_duration_seconds_sum{{monitor=\"{n}\"}} {}",
            num(s.sum_s)
        );
        let _ = writeln!(
            o,
            "opskit_monitor_check_duration_seconds_count{{monitor=\"{n}\"}} {}",
            s.count
        );
    }

    let qs = [0.5, 0.9, 0.99];
    let (q, sum, count) = lateness(stats, &qs);
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_schedule_lateness_seconds How late checks started after they were due."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_schedule_lateness_seconds summary");
    for (qq, v) in qs.iter().zip(q) {
        let _ = writeln!(
            o,
            "opskit_monitor_schedule_lateness_seconds{{quantile=\"{qq}\"}} {}",
            v.map_or("NaN".into(), num)
        );
    }
    let _ = writeln!(
        o,
        "opskit_monitor_schedule_lateness_seconds_sum {}",
        num(sum)
    );
    let _ = writeln!(o, "opskit_monitor_schedule_lateness_seconds_count {count}");
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_checks_skipped_total Checks not started because the previous check of the monitor was still running."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_checks_skipped_total counter");
    let _ = writeln!(
        o,
        "opskit_monitor_checks_skipped_total {}",
        stats.skipped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_record_errors_total Results that could not be recorded in the database."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_record_errors_total counter");
    let _ = writeln!(
        o,
        "opskit_monitor_record_errors_total {}",
        stats.record_errors.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP opskit_monitor_monitors Monitors in the running configuration."
    );
    let _ = writeln!(o, "# TYPE opskit_monitor_monitors gauge");
    let _ = writeln!(o, "opskit_monitor_monitors {}", config.monitors.len());
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(status: Status, ms: f64) -> Report {
        Report {
            monitor: "a".into(),
            kind: "http",
            target: "t".into(),
            status,
            response_time_ms: ms,
            reason: None,
            failed_condition: None,
            result: json!({}),
        }
    }

    #[test]
    fn counts_buckets_failures_and_escapes() {
        let cfg = crate::config::parse(
            "m.toml",
            "[[monitor]]\nname = 'we\"ird\\name'\ngroup = \"core\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let stats = Stats::default();
        let name = "we\"ird\\name";
        stats
            .monitors
            .observe(name, &report(Status::Down, 20.0), false);
        stats
            .monitors
            .observe(name, &report(Status::Down, 700.0), false);
        stats
            .monitors
            .observe(name, &report(Status::Unknown, 1.0), false);
        stats
            .monitors
            .observe(name, &report(Status::Down, 3.0), true);
        if let Ok(mut l) = stats.lateness_ms.lock() {
            l.extend([1.0f32, 2.0, 3.0, 400.0]);
        }
        stats.skipped.fetch_add(2, Ordering::Relaxed);
        let text = render(&cfg, &stats);
        let n = "monitor=\"we\\\"ird\\\\name\"";
        for line in [
            format!("opskit_monitor_up{{{n},group=\"core\",kind=\"tcp\"}} 0"),
            format!("opskit_monitor_state{{{n},state=\"down\"}} 1"),
            format!("opskit_monitor_consecutive_failures{{{n}}} 2"),
            format!("opskit_monitor_checks_total{{{n},result=\"down\"}} 3"),
            format!("opskit_monitor_checks_total{{{n},result=\"unknown\"}} 1"),
            format!("opskit_monitor_check_duration_seconds_bucket{{{n},le=\"0.025\"}} 3"),
            format!("opskit_monitor_check_duration_seconds_bucket{{{n},le=\"1\"}} 4"),
            format!("opskit_monitor_check_duration_seconds_bucket{{{n},le=\"+Inf\"}} 4"),
            format!("opskit_monitor_check_duration_seconds_count{{{n}}} 4"),
            format!("opskit_monitor_last_check_duration_seconds{{{n}}} 0.003"),
            "opskit_monitor_schedule_lateness_seconds{quantile=\"0.99\"} 0.4".to_string(),
            "opskit_monitor_schedule_lateness_seconds_count 4".to_string(),
            "opskit_monitor_checks_skipped_total 2".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        stats
            .monitors
            .observe(name, &report(Status::Up, 3.0), false);
        let text = render(&cfg, &stats);
        assert!(text.contains(&format!("opskit_monitor_consecutive_failures{{{n}}} 0")));
        assert!(text.contains(&format!(
            "opskit_monitor_up{{{n},group=\"core\",kind=\"tcp\"}} 1"
        )));
    }

    #[test]
    fn no_samples_is_nan_not_an_error() {
        let cfg = crate::config::parse("m.toml", "").unwrap();
        let text = render(&cfg, &Stats::default());
        assert!(text.contains("opskit_monitor_schedule_lateness_seconds{quantile=\"0.5\"} NaN"));
        assert!(text.contains("opskit_monitor_monitors 0"));
    }
}
