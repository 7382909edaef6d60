//! The alert state machine. Each judged result is recorded in one transaction that also updates
//! the counters, opens or closes the incident and writes the alerts it causes to the outbox, so
//! a crash can neither lose an alert nor send it twice, and a restart remembers open incidents.
//!
//! Rules, per monitor:
//! - a down result adds to `consecutive_failures` (and zeroes the successes), an up one the
//!   reverse; an `unknown` result (the guard reached nothing) or one inside a maintenance window
//!   changes no counter and alerts nobody;
//! - an incident opens when the failures reach the smallest `failure_threshold` of its alerts
//!   (3 without alerts); each alert triggers once its own threshold is reached;
//! - a firing alert is reminded every `remind_every` while the incident lasts;
//! - a firing alert resolves when the successes reach its `success_threshold` (a "resolved"
//!   message when `send_resolved`); the incident closes when every alert has resolved and the
//!   successes reach the largest success threshold (2 without alerts).

use serde_json::{Value, json};
use sqlx::Row as _;

use crate::Result;
use crate::check::{Report, Status};
use crate::config::{Config, DEFAULT_FAILURE_THRESHOLD, DEFAULT_SUCCESS_THRESHOLD, Monitor};
use crate::store::Db;

/// What recording a result did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// Alerts written to the outbox: `(destination, event)`.
    pub alerts: Vec<(String, String)>,
    /// The incident opened by this result.
    pub opened: Option<String>,
    /// The incident closed by this result.
    pub closed: Option<String>,
    /// The result was inside a maintenance window.
    pub in_maintenance: bool,
}

/// Is `monitor` inside a maintenance window at `now_ms`?
pub fn in_maintenance(config: &Config, monitor: &Monitor, now_ms: i64) -> bool {
    let Ok(now) = jiff::Timestamp::from_millisecond(now_ms) else {
        return false;
    };
    config
        .maintenance
        .iter()
        .any(|w| w.applies_to(&monitor.name, monitor.group.as_deref()) && w.is_active(now))
}

fn event_rank(event: &str) -> i64 {
    match event {
        "trigger" => 0,
        "remind" => 1,
        _ => 2,
    }
}

/// Records `report` for `monitor` at `now_ms` and applies the state machine.
pub async fn record(
    db: &Db,
    config: &Config,
    monitor: &Monitor,
    report: &Report,
    now_ms: i64,
) -> Result<Recorded> {
    let maintenance = in_maintenance(config, monitor, now_ms);
    let mut out = Recorded {
        in_maintenance: maintenance,
        ..Recorded::default()
    };
    let status = report.status;
    let mut tx = db.pool.begin().await?;

    // The write first: on SQLite it takes the write lock before anything is read.
    sqlx::query(
        "INSERT INTO results (monitor, at_ms, status, response_time_ms, reason) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&monitor.name)
    .bind(now_ms)
    .bind(status.as_str())
    .bind(report.response_time_ms)
    .bind(report.reason.as_deref())
    .execute(&mut *tx)
    .await?;
    // Fencing: only the current leader's results count (the write above holds SQLite's lock;
    // on PostgreSQL the check locks the lease row until commit).
    if let Some(fence) = &db.fence {
        fence.check(&mut tx).await?;
    }
    let (up, down, unknown) = match status {
        Status::Up => (1i64, 0i64, 0i64),
        Status::Down => (0, 1, 0),
        Status::Unknown => (0, 0, 1),
    };
    for (span, size) in [("hour", 3_600_000i64), ("day", 86_400_000i64)] {
        sqlx::query(
            "INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (monitor, span, bucket_ms) DO UPDATE SET \
             up = uptime_buckets.up + excluded.up, down = uptime_buckets.down + excluded.down, \
             unknown = uptime_buckets.unknown + excluded.unknown, \
             latency_sum_ms = uptime_buckets.latency_sum_ms + excluded.latency_sum_ms",
        )
        .bind(&monitor.name)
        .bind(span)
        .bind(now_ms - now_ms.rem_euclid(size))
        .bind(up)
        .bind(down)
        .bind(unknown)
        .bind(report.response_time_ms)
        .execute(&mut *tx)
        .await?;
    }

    let row = sqlx::query(
        "SELECT consecutive_failures, consecutive_successes FROM monitor_state WHERE monitor = $1",
    )
    .bind(&monitor.name)
    .fetch_optional(&mut *tx)
    .await?;
    let (mut failures, mut successes) =
        row.map_or((0i64, 0i64), |r| (r.get::<i64, _>(0), r.get::<i64, _>(1)));
    let counts = !maintenance && status != Status::Unknown;
    if counts {
        if status == Status::Down {
            failures += 1;
            successes = 0;
        } else {
            successes += 1;
            failures = 0;
        }
    }
    sqlx::query(
        "INSERT INTO monitor_state (monitor, status, consecutive_failures, consecutive_successes, \
         last_check_ms, last_reason, last_response_time_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (monitor) DO UPDATE SET status = excluded.status, \
         consecutive_failures = excluded.consecutive_failures, \
         consecutive_successes = excluded.consecutive_successes, \
         last_check_ms = excluded.last_check_ms, last_reason = excluded.last_reason, \
         last_response_time_ms = excluded.last_response_time_ms",
    )
    .bind(&monitor.name)
    .bind(status.as_str())
    .bind(failures)
    .bind(successes)
    .bind(now_ms)
    .bind(report.reason.as_deref())
    .bind(report.response_time_ms)
    .execute(&mut *tx)
    .await?;

    if counts {
        let open = sqlx::query(
            "SELECT id, started_ms FROM incidents WHERE monitor = $1 AND resolved_ms IS NULL",
        )
        .bind(&monitor.name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)));
        let firing: Vec<(String, String, i64)> = sqlx::query(
            "SELECT destination, incident_id, last_sent_ms FROM alert_state WHERE monitor = $1",
        )
        .bind(&monitor.name)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        let open_threshold = monitor
            .alerts
            .iter()
            .map(|a| a.failure_threshold)
            .min()
            .unwrap_or(DEFAULT_FAILURE_THRESHOLD) as i64;
        let close_threshold = monitor
            .alerts
            .iter()
            .map(|a| a.success_threshold)
            .max()
            .unwrap_or(DEFAULT_SUCCESS_THRESHOLD) as i64;

        let mut incident = open.clone();
        if status == Status::Down && incident.is_none() && failures >= open_threshold {
            let id = format!("inc_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(
                "INSERT INTO incidents (id, monitor, started_ms, reason) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(&monitor.name)
            .bind(now_ms)
            .bind(report.reason.as_deref())
            .execute(&mut *tx)
            .await?;
            out.opened = Some(id.clone());
            incident = Some((id, now_ms));
        }

        let mut events: Vec<(String, &'static str, String)> = Vec::new(); // (dest, event, incident)
        if let Some((inc, _)) = &incident {
            for rule in &monitor.alerts {
                let fired = firing.iter().find(|f| f.0 == rule.destination);
                match (status, fired) {
                    (Status::Down, None) if failures >= rule.failure_threshold as i64 => {
                        sqlx::query(
                            "INSERT INTO alert_state (monitor, destination, incident_id, last_sent_ms) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&monitor.name)
                        .bind(&rule.destination)
                        .bind(inc)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        events.push((rule.destination.clone(), "trigger", inc.clone()));
                    }
                    (Status::Down, Some((_, fired_inc, last))) => {
                        if let Some(every) = rule.remind_every
                            && now_ms - last >= every.as_millis() as i64
                        {
                            sqlx::query(
                                "UPDATE alert_state SET last_sent_ms = $1 \
                                 WHERE monitor = $2 AND destination = $3",
                            )
                            .bind(now_ms)
                            .bind(&monitor.name)
                            .bind(&rule.destination)
                            .execute(&mut *tx)
                            .await?;
                            events.push((rule.destination.clone(), "remind", fired_inc.clone()));
                        }
                    }
                    (Status::Up, Some((_, fired_inc, _)))
                        if successes >= rule.success_threshold as i64 =>
                    {
                        sqlx::query(
                            "DELETE FROM alert_state WHERE monitor = $1 AND destination = $2",
                        )
                        .bind(&monitor.name)
                        .bind(&rule.destination)
                        .execute(&mut *tx)
                        .await?;
                        if rule.send_resolved {
                            events.push((rule.destination.clone(), "resolve", fired_inc.clone()));
                        }
                    }
                    _ => {}
                }
            }
            // The incident closes; alerts whose rule left the config since they fired go quietly.
            if status == Status::Up && successes >= close_threshold {
                sqlx::query("DELETE FROM alert_state WHERE monitor = $1")
                    .bind(&monitor.name)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE incidents SET resolved_ms = $1 WHERE id = $2")
                    .bind(now_ms)
                    .bind(inc)
                    .execute(&mut *tx)
                    .await?;
                out.closed = Some(inc.clone());
            }
        }

        for (dest, event, inc) in events {
            let started_ms = incident.as_ref().map_or(now_ms, |i| i.1);
            let mut payload = payload(config, monitor, report, event, &inc, started_ms, now_ms);
            if let Some(d) = monitor
                .alerts
                .iter()
                .find(|a| a.destination == dest)
                .and_then(|a| a.description.as_deref())
            {
                payload["description"] = json!(d);
            }
            let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(
                "INSERT INTO outbox (id, seq, monitor, destination, incident_id, event, payload, \
                 created_ms, next_attempt_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id)
            .bind(now_ms * 4 + event_rank(event))
            .bind(&monitor.name)
            .bind(&dest)
            .bind(&inc)
            .bind(event)
            .bind(payload.to_string())
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            out.alerts.push((dest, event.to_string()));
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// The neutral alert document stored in the outbox; each destination renders it its own way,
/// and signed webhooks receive it as is.
fn payload(
    _config: &Config,
    monitor: &Monitor,
    report: &Report,
    event: &str,
    incident: &str,
    started_ms: i64,
    now_ms: i64,
) -> Value {
    let iso = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    json!({
        "type": format!("monitor.{event}"),
        "event": event,
        "monitor": monitor.name,
        "group": monitor.group,
        "kind": report.kind,
        "target": report.target,
        "status": report.status,
        "incident_id": incident,
        "incident_started_at": iso(started_ms),
        "time": iso(now_ms),
        "reason": report.reason,
        "failed_condition": report.failed_condition,
        "response_time_ms": report.response_time_ms,
    })
}
