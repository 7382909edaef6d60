//! Read queries for the monitors API and the status page (issue 14): a monitor's raw results a
//! page at a time, its uptime over 24 h / 7 d / 30 d with per-day buckets, and incidents (open
//! and past) with the condition that failed and the alerts sent for each.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row as _;

use crate::Result;
use crate::store::Db;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// One raw result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub at_ms: i64,
    pub status: String,
    pub response_time_ms: Option<f64>,
    pub reason: Option<String>,
}

/// A page of results, newest first; `next_before_ms` asks for the following (older) page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_before_ms: Option<i64>,
}

/// The newest `limit` (1..=1000) results of `monitor` older than `before_ms` (all when `None`).
/// Keyset paging: a page stays correct while new results arrive.
pub async fn results(
    db: &Db,
    monitor: &str,
    before_ms: Option<i64>,
    limit: u32,
) -> Result<Page<ResultRow>> {
    let limit = i64::from(limit.clamp(1, 1000));
    let rows = sqlx::query(
        "SELECT at_ms, status, response_time_ms, reason FROM results \
         WHERE monitor = $1 AND at_ms < $2 ORDER BY at_ms DESC LIMIT $3",
    )
    .bind(monitor)
    .bind(before_ms.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(&db.pool)
    .await?;
    let mut items: Vec<ResultRow> = rows
        .iter()
        .map(|r| ResultRow {
            at_ms: r.get(0),
            status: r.get(1),
            response_time_ms: r.get(2),
            reason: r.get(3),
        })
        .collect();
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_before_ms = if more {
        items.last().map(|r| r.at_ms)
    } else {
        None
    };
    Ok(Page {
        items,
        next_before_ms,
    })
}

/// One day of a monitor (UTC days).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayBucket {
    pub day_ms: i64,
    pub up: i64,
    pub down: i64,
    pub unknown: i64,
    /// Up among up+down, in percent; `None` without judged results.
    pub uptime: Option<f64>,
    pub mean_response_time_ms: Option<f64>,
}

/// A monitor's uptime: percentages over 24 h (hourly buckets), 7 and 30 days (daily buckets),
/// and the last 30 days one by one (oldest first; days without results are left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uptime {
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub uptime_30d: Option<f64>,
    pub days: Vec<DayBucket>,
}

fn pct(up: i64, down: i64) -> Option<f64> {
    let judged = up + down;
    (judged > 0).then(|| (up as f64 * 10000.0 / judged as f64).round() / 100.0)
}

/// The uptime of `monitor` at `now_ms`.
pub async fn uptime(db: &Db, monitor: &str, now_ms: i64) -> Result<Uptime> {
    let today = now_ms - now_ms.rem_euclid(DAY);
    let rows = sqlx::query(
        "SELECT bucket_ms, up, down, unknown, latency_sum_ms FROM uptime_buckets \
         WHERE monitor = $1 AND span = 'day' AND bucket_ms >= $2 ORDER BY bucket_ms",
    )
    .bind(monitor)
    .bind(today - 29 * DAY)
    .fetch_all(&db.pool)
    .await?;
    let days: Vec<DayBucket> = rows
        .iter()
        .map(|r| {
            let (up, down, unknown): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
            let lat: f64 = r.get(4);
            let total = up + down + unknown;
            DayBucket {
                day_ms: r.get(0),
                up,
                down,
                unknown,
                uptime: pct(up, down),
                mean_response_time_ms: (total > 0)
                    .then(|| (lat / total as f64 * 10.0).round() / 10.0),
            }
        })
        .collect();
    let sum = |since: i64| {
        days.iter()
            .filter(|d| d.day_ms >= since)
            .fold((0, 0), |(u, d), b| (u + b.up, d + b.down))
    };
    let (u7, d7) = sum(today - 6 * DAY);
    let (u30, d30) = sum(today - 29 * DAY);
    let h = sqlx::query(
        "SELECT CAST(COALESCE(SUM(up), 0) AS BIGINT), CAST(COALESCE(SUM(down), 0) AS BIGINT) \
         FROM uptime_buckets WHERE monitor = $1 AND span = 'hour' AND bucket_ms >= $2",
    )
    .bind(monitor)
    .bind(now_ms - now_ms.rem_euclid(HOUR) - 23 * HOUR)
    .fetch_one(&db.pool)
    .await?;
    Ok(Uptime {
        uptime_24h: pct(h.get(0), h.get(1)),
        uptime_7d: pct(u7, d7),
        uptime_30d: pct(u30, d30),
        days,
    })
}

/// An alert sent (or being sent) for an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentAlert {
    /// The webhook id.
    pub id: String,
    pub destination: String,
    /// `trigger`, `remind` or `resolve`.
    pub event: String,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
    pub failed_ms: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The Jira issue key or PagerDuty dedup key.
    pub external_key: Option<String>,
}

/// An incident with its alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRow {
    pub id: String,
    pub monitor: String,
    pub started_ms: i64,
    pub resolved_ms: Option<i64>,
    pub reason: Option<String>,
    /// Why it closed without its monitor recovering (`monitor removed`); `None` when it
    /// recovered or is open.
    pub resolved_reason: Option<String>,
    /// The condition that failed and the values seen, from the first alert (when one was sent).
    pub failed_condition: Option<Value>,
    pub alerts: Vec<SentAlert>,
}

/// Which incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentFilter {
    All,
    Open,
    Past,
}

/// Incidents newest first, `limit` (1..=500) at a time, started before `before_ms`; of one
/// monitor or of all.
pub async fn incidents(
    db: &Db,
    monitor: Option<&str>,
    filter: IncidentFilter,
    before_ms: Option<i64>,
    limit: u32,
) -> Result<Page<IncidentRow>> {
    let limit = i64::from(limit.clamp(1, 500));
    let state = match filter {
        IncidentFilter::All => "",
        IncidentFilter::Open => " AND resolved_ms IS NULL",
        IncidentFilter::Past => " AND resolved_ms IS NOT NULL",
    };
    let sql = format!(
        "SELECT id, monitor, started_ms, resolved_ms, reason, resolved_reason FROM incidents \
         WHERE started_ms < $1 AND ($2 = '' OR monitor = $2){state} \
         ORDER BY started_ms DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(monitor.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&db.pool)
        .await?;
    let mut items = Vec::new();
    for r in rows.iter().take(limit as usize) {
        let id: String = r.get(0);
        let sent = sqlx::query(
            "SELECT id, destination, event, created_ms, delivered_ms, failed_ms, attempts, \
             last_error, external_key, payload FROM outbox WHERE incident_id = $1 \
             ORDER BY seq, id",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await?;
        let failed_condition = sent
            .iter()
            .filter_map(|a| serde_json::from_str::<Value>(&a.get::<String, _>(9)).ok())
            .map(|p| p["failed_condition"].clone())
            .find(|c| !c.is_null());
        items.push(IncidentRow {
            monitor: r.get(1),
            started_ms: r.get(2),
            resolved_ms: r.get(3),
            reason: r.get(4),
            resolved_reason: r.get(5),
            failed_condition,
            alerts: sent
                .iter()
                .map(|a| SentAlert {
                    id: a.get(0),
                    destination: a.get(1),
                    event: a.get(2),
                    created_ms: a.get(3),
                    delivered_ms: a.get(4),
                    failed_ms: a.get(5),
                    attempts: a.get(6),
                    last_error: a.get(7),
                    external_key: a.get(8),
                })
                .collect(),
            id,
        });
    }
    let next_before_ms = if rows.len() as i64 > limit {
        items.last().map(|i| i.started_ms)
    } else {
        None
    };
    Ok(Page {
        items,
        next_before_ms,
    })
}
