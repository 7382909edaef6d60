//! Everything the status page shows, for every monitor at once, in six queries whatever the
//! number of monitors: the current state and since when, uptime over 24 h / 7 d / 30 d, the
//! last 30 days one by one, the last results (for a response-time chart), open incidents and
//! the recently resolved ones with the condition that failed.
//!
//! [`crate::status::status`] and [`crate::query`] answer the same questions one monitor at a
//! time (several queries each); a page of 200 monitors built from them would issue about a
//! thousand queries. Here each question is one query over all monitors.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row as _;

use crate::Result;
use crate::query::DayBucket;
use crate::store::Db;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// One monitor on the status page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorOverview {
    /// `up`, `down` or `unknown`: the last judged state.
    pub status: String,
    /// The first of the results in a row that have the current state (as far back as results
    /// are kept).
    pub since_ms: Option<i64>,
    pub last_check_ms: i64,
    pub last_reason: Option<String>,
    pub last_response_time_ms: Option<f64>,
    /// Percent up among up+down results; `None` without judged results.
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// The last 30 UTC days that have results, oldest first.
    pub days: Vec<DayBucket>,
    /// The last results, oldest first.
    pub recent: Vec<Point>,
}

/// One result of the response-time chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub at_ms: i64,
    pub status: String,
    pub response_time_ms: Option<f64>,
}

/// An incident, open or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentSummary {
    pub id: String,
    pub monitor: String,
    pub started_ms: i64,
    pub resolved_ms: Option<i64>,
    pub reason: Option<String>,
    /// The condition that failed, as written in the config (from the trigger alert, when one
    /// was sent).
    pub condition: Option<String>,
    /// What the condition saw instead.
    pub got: Option<Value>,
}

/// The whole page's data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Overview {
    /// By monitor name; a monitor that has never been checked is absent.
    pub monitors: HashMap<String, MonitorOverview>,
    /// Open incidents, newest first.
    pub open: Vec<IncidentSummary>,
    /// Incidents resolved since the time asked for, most recently resolved first.
    pub resolved: Vec<IncidentSummary>,
}

/// What to read.
#[derive(Debug, Clone, Copy)]
pub struct OverviewQuery {
    pub now_ms: i64,
    /// Results per monitor for the chart (1..=500).
    pub recent: u32,
    /// Resolved incidents shown: those resolved at or after this time …
    pub resolved_since_ms: i64,
    /// … at most this many (0..=500).
    pub max_resolved: u32,
}

fn pct(up: i64, down: i64) -> Option<f64> {
    let judged = up + down;
    (judged > 0).then(|| (up as f64 * 10000.0 / judged as f64).round() / 100.0)
}

#[derive(Default)]
struct Sums {
    up: i64,
    down: i64,
}

/// Reads the status page's data for every monitor in the database.
pub async fn overview(db: &Db, q: OverviewQuery) -> Result<Overview> {
    let now = q.now_ms;
    let today = now - now.rem_euclid(DAY);
    let mut monitors: HashMap<String, MonitorOverview> = HashMap::new();

    // 1. the state of each monitor
    for r in sqlx::query(
        "SELECT monitor, status, last_check_ms, last_reason, last_response_time_ms \
         FROM monitor_state",
    )
    .fetch_all(&db.pool)
    .await?
    {
        monitors.insert(
            r.get(0),
            MonitorOverview {
                status: r.get(1),
                since_ms: None,
                last_check_ms: r.get(2),
                last_reason: r.get(3),
                last_response_time_ms: r.get(4),
                uptime_24h: None,
                uptime_7d: None,
                uptime_30d: None,
                days: Vec::new(),
                recent: Vec::new(),
            },
        );
    }
    if monitors.is_empty() {
        return Ok(Overview::default());
    }

    // 2. since when: the first result after the last one whose state differs from the current
    // (the bound is computed once per monitor: MATERIALIZED keeps the planner from folding it
    // into the join, where it would run once per result)
    for r in sqlx::query(
        "WITH t AS MATERIALIZED (SELECT s.monitor, COALESCE((SELECT MAX(x.at_ms) \
             FROM results x WHERE x.monitor = s.monitor AND x.status <> s.status), -1) AS after_ms \
             FROM monitor_state s) \
         SELECT t.monitor, MIN(r.at_ms) FROM t \
         JOIN results r ON r.monitor = t.monitor AND r.at_ms > t.after_ms \
         GROUP BY t.monitor",
    )
    .fetch_all(&db.pool)
    .await?
    {
        let name: String = r.get(0);
        if let Some(m) = monitors.get_mut(&name) {
            m.since_ms = r.get(1);
        }
    }

    // 3. uptime: the daily buckets of the last 30 days one by one, and the sum of the hourly
    // ones of the last 24 h (one row per monitor)
    let mut hours: HashMap<String, Sums> = HashMap::new();
    for r in sqlx::query(
        "SELECT monitor, span, bucket_ms, up, down, unknown, latency_sum_ms FROM uptime_buckets \
         WHERE span = 'day' AND bucket_ms >= $1 \
         UNION ALL \
         SELECT monitor, span, CAST(0 AS BIGINT), CAST(SUM(up) AS BIGINT), CAST(SUM(down) AS BIGINT), \
             CAST(SUM(unknown) AS BIGINT), CAST(SUM(latency_sum_ms) AS DOUBLE PRECISION) \
         FROM uptime_buckets WHERE span = 'hour' AND bucket_ms >= $2 GROUP BY monitor, span \
         ORDER BY 1, 3",
    )
    .bind(today - 29 * DAY)
    .bind(now - now.rem_euclid(HOUR) - 23 * HOUR)
    .fetch_all(&db.pool)
    .await?
    {
        let name: String = r.get(0);
        let span: String = r.get(1);
        let (up, down, unknown): (i64, i64, i64) = (r.get(3), r.get(4), r.get(5));
        if span == "hour" {
            let s = hours.entry(name).or_default();
            s.up += up;
            s.down += down;
        } else if let Some(m) = monitors.get_mut(&name) {
            let lat: f64 = r.get(6);
            let total = up + down + unknown;
            m.days.push(DayBucket {
                day_ms: r.get(2),
                up,
                down,
                unknown,
                uptime: pct(up, down),
                mean_response_time_ms: (total > 0)
                    .then(|| (lat / total as f64 * 10.0).round() / 10.0),
            });
        }
    }
    for (name, m) in &mut monitors {
        if let Some(h) = hours.get(name) {
            m.uptime_24h = pct(h.up, h.down);
        }
        let sum = |since: i64| {
            m.days
                .iter()
                .filter(|d| d.day_ms >= since)
                .fold((0, 0), |(u, d), b| (u + b.up, d + b.down))
        };
        let (u7, d7) = sum(today - 6 * DAY);
        let (u30, d30) = sum(today - 29 * DAY);
        m.uptime_7d = pct(u7, d7);
        m.uptime_30d = pct(u30, d30);
    }

    // 4. the last `recent` results of each monitor: an index seek per monitor finds the oldest
    // one wanted (once per monitor, as in 2), inside one statement
    let recent = i64::from(q.recent.clamp(1, 500));
    for r in sqlx::query(
        "WITH t AS MATERIALIZED (SELECT s.monitor, COALESCE((SELECT x.at_ms FROM results x \
             WHERE x.monitor = s.monitor ORDER BY x.at_ms DESC LIMIT 1 OFFSET $1), -1) AS from_ms \
             FROM monitor_state s) \
         SELECT r.monitor, r.at_ms, r.status, r.response_time_ms FROM t \
         JOIN results r ON r.monitor = t.monitor AND r.at_ms >= t.from_ms \
         ORDER BY r.monitor, r.at_ms",
    )
    .bind(recent - 1)
    .fetch_all(&db.pool)
    .await?
    {
        let name: String = r.get(0);
        if let Some(m) = monitors.get_mut(&name) {
            m.recent.push(Point {
                at_ms: r.get(1),
                status: r.get(2),
                response_time_ms: r.get(3),
            });
        }
    }

    // 5. incidents: every open one, and the latest resolved ones
    let row = |r: &sqlx::any::AnyRow| IncidentSummary {
        id: r.get(0),
        monitor: r.get(1),
        started_ms: r.get(2),
        resolved_ms: r.get(3),
        reason: r.get(4),
        condition: None,
        got: None,
    };
    let mut open: Vec<IncidentSummary> = sqlx::query(
        "SELECT id, monitor, started_ms, resolved_ms, reason FROM incidents \
         WHERE resolved_ms IS NULL ORDER BY started_ms DESC, id",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(row)
    .collect();
    let mut resolved: Vec<IncidentSummary> = if q.max_resolved == 0 {
        Vec::new()
    } else {
        sqlx::query(
            "SELECT id, monitor, started_ms, resolved_ms, reason FROM incidents \
             WHERE resolved_ms IS NOT NULL AND resolved_ms >= $1 \
             ORDER BY resolved_ms DESC, id LIMIT $2",
        )
        .bind(q.resolved_since_ms)
        .bind(i64::from(q.max_resolved.min(500)))
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    };

    // 6. the failed condition of those incidents, from their trigger alerts, in one query
    let ids: Vec<&str> = open
        .iter()
        .chain(resolved.iter())
        .map(|i| i.id.as_str())
        .collect();
    if !ids.is_empty() {
        let marks: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT incident_id, payload FROM outbox WHERE event = 'trigger' \
             AND incident_id IN ({}) ORDER BY seq",
            marks.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            query = query.bind(*id);
        }
        let mut found: HashMap<String, Value> = HashMap::new();
        for r in query.fetch_all(&db.pool).await? {
            let id: String = r.get(0);
            let payload: String = r.get(1);
            if found.contains_key(&id) {
                continue;
            }
            if let Ok(p) = serde_json::from_str::<Value>(&payload)
                && p["failed_condition"].is_object()
            {
                found.insert(id, p["failed_condition"].clone());
            }
        }
        for i in open.iter_mut().chain(resolved.iter_mut()) {
            if let Some(c) = found.remove(&i.id) {
                i.condition = c["condition"].as_str().map(str::to_owned);
                i.got = c.get("got").cloned().filter(|v| !v.is_null());
            }
        }
    }

    Ok(Overview {
        monitors,
        open,
        resolved,
    })
}

/// The last judged state of one monitor (`up`, `down`, `unknown`); `None` before its first
/// check.
pub async fn state_of(db: &Db, monitor: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT status FROM monitor_state WHERE monitor = $1")
            .bind(monitor)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.get(0)),
    )
}
