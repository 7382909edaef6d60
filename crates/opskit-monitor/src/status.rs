//! What `opskit monitor status` (and later the status page) shows: each monitor's state, open
//! incidents and uptime over 24 hours (hourly buckets), 7 and 30 days (daily buckets).

use serde::Serialize;
use sqlx::Row as _;

use crate::Result;
use crate::store::Db;

/// One monitor's state.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorStatus {
    pub monitor: String,
    pub status: String,
    pub last_check_ms: i64,
    pub last_reason: Option<String>,
    pub last_response_time_ms: Option<f64>,
    pub consecutive_failures: i64,
    pub consecutive_successes: i64,
    /// Percentages of up among up+down results (unknown ones excluded); `None` without data.
    pub uptime_24h: Option<f64>,
    pub uptime_7d: Option<f64>,
    pub uptime_30d: Option<f64>,
    /// Mean latency over 24 hours.
    pub mean_response_time_24h_ms: Option<f64>,
    /// The open incident, if any.
    pub incident: Option<Incident>,
}

/// An incident.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: String,
    pub started_ms: i64,
    pub reason: Option<String>,
}

async fn uptime(
    db: &Db,
    monitor: &str,
    span: &str,
    since_ms: i64,
) -> Result<(Option<f64>, Option<f64>)> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(up), 0) AS BIGINT), CAST(COALESCE(SUM(down), 0) AS BIGINT), \
         CAST(COALESCE(SUM(unknown), 0) AS BIGINT), \
         CAST(COALESCE(SUM(latency_sum_ms), 0) AS DOUBLE PRECISION) FROM uptime_buckets \
         WHERE monitor = $1 AND span = $2 AND bucket_ms >= $3",
    )
    .bind(monitor)
    .bind(span)
    .bind(since_ms)
    .fetch_one(&db.pool)
    .await?;
    let (up, down, unknown): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    let lat: f64 = r.get(3);
    let judged = up + down;
    let pct = (judged > 0).then(|| (up as f64 * 10000.0 / judged as f64).round() / 100.0);
    let total = judged + unknown;
    let mean = (total > 0).then(|| (lat / total as f64 * 10.0).round() / 10.0);
    Ok((pct, mean))
}

/// Every monitor the database knows, by name.
pub async fn status(db: &Db, now_ms: i64) -> Result<Vec<MonitorStatus>> {
    let rows = sqlx::query(
        "SELECT monitor, status, last_check_ms, last_reason, last_response_time_ms, \
         consecutive_failures, consecutive_successes FROM monitor_state ORDER BY monitor",
    )
    .fetch_all(&db.pool)
    .await?;
    let hour = 3_600_000i64;
    let day = 86_400_000i64;
    let mut out = Vec::new();
    for r in rows {
        let monitor: String = r.get(0);
        let (u24, mean24) = uptime(
            db,
            &monitor,
            "hour",
            now_ms - now_ms.rem_euclid(hour) - 23 * hour,
        )
        .await?;
        let (u7, _) = uptime(
            db,
            &monitor,
            "day",
            now_ms - now_ms.rem_euclid(day) - 6 * day,
        )
        .await?;
        let (u30, _) = uptime(
            db,
            &monitor,
            "day",
            now_ms - now_ms.rem_euclid(day) - 29 * day,
        )
        .await?;
        let incident = sqlx::query(
            "SELECT id, started_ms, reason FROM incidents WHERE monitor = $1 AND resolved_ms IS NULL",
        )
        .bind(&monitor)
        .fetch_optional(&db.pool)
        .await?
        .map(|i| Incident {
            id: i.get(0),
            started_ms: i.get(1),
            reason: i.get(2),
        });
        out.push(MonitorStatus {
            status: r.get(1),
            last_check_ms: r.get(2),
            last_reason: r.get(3),
            last_response_time_ms: r.get(4),
            consecutive_failures: r.get(5),
            consecutive_successes: r.get(6),
            uptime_24h: u24,
            uptime_7d: u7,
            uptime_30d: u30,
            mean_response_time_24h_ms: mean24,
            incident,
            monitor,
        });
    }
    Ok(out)
}

/// Outbox rows not delivered yet, and rows given up: `(pending, failed)`.
pub async fn outbox_counts(db: &Db) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT \
         CAST(COALESCE(SUM(CASE WHEN delivered_ms IS NULL AND failed_ms IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN failed_ms IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) FROM outbox",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok((r.get(0), r.get(1)))
}
