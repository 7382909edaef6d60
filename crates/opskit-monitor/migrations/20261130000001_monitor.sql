-- opskit-monitor schema. Portable SQL (SQLite and PostgreSQL). Applied by
-- opskit_monitor::store::migrate, which keeps its own migrations table
-- (_opskit_monitor_migrations), so it can share a database with `opskit serve`.

-- Last judged state and the consecutive counters of each monitor.
CREATE TABLE monitor_state (
    monitor TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    consecutive_successes BIGINT NOT NULL DEFAULT 0,
    last_check_ms BIGINT NOT NULL,
    last_reason TEXT,
    last_response_time_ms DOUBLE PRECISION
);

-- One row per monitor and destination while an alert is firing.
CREATE TABLE alert_state (
    monitor TEXT NOT NULL,
    destination TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    external_key TEXT,
    last_sent_ms BIGINT NOT NULL,
    PRIMARY KEY (monitor, destination)
);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    monitor TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    resolved_ms BIGINT,
    reason TEXT
);
CREATE INDEX incidents_monitor ON incidents (monitor, started_ms);

-- Alerts to deliver, written in the same transaction as the state change that causes them.
-- `id` is the webhook id, the same on every attempt.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    monitor TEXT NOT NULL,
    destination TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    failed_ms BIGINT,
    last_error TEXT,
    external_key TEXT
);
CREATE INDEX outbox_pending ON outbox (delivered_ms, failed_ms, seq);

-- Raw results, capped per monitor.
CREATE TABLE results (
    monitor TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    response_time_ms DOUBLE PRECISION,
    reason TEXT
);
CREATE INDEX results_monitor_at ON results (monitor, at_ms);

-- Uptime pre-aggregated per hour and per day.
CREATE TABLE uptime_buckets (
    monitor TEXT NOT NULL,
    span TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    up BIGINT NOT NULL DEFAULT 0,
    down BIGINT NOT NULL DEFAULT 0,
    unknown BIGINT NOT NULL DEFAULT 0,
    latency_sum_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (monitor, span, bucket_ms)
);

-- Last ping of each heartbeat token.
CREATE TABLE heartbeats (
    token TEXT PRIMARY KEY,
    last_ping_ms BIGINT NOT NULL
);
