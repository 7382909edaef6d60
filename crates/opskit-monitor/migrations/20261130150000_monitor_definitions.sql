-- Monitors created through the API of `opskit serve` (/api/v1/monitors). `definition` is the
-- monitor as a JSON object of the same shape as a [[monitor]] table of monitor.toml; `version`
-- is the revision behind the ETag. Times are ms since the epoch.
CREATE TABLE monitor_definitions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX monitor_definitions_created ON monitor_definitions (created_ms, id);
