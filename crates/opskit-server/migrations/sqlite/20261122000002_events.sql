-- Received webhook events (POST /api/v1/events). The UNIQUE webhook_id is the replay guard:
-- a delivery whose id was already stored fails its insert, whichever server process gets it.
CREATE TABLE events (
    id           TEXT PRIMARY KEY NOT NULL,
    webhook_id   TEXT UNIQUE,
    source       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    signed_at    BIGINT,
    verified     BIGINT NOT NULL,
    payload      TEXT NOT NULL
);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_source ON events (source, received_at);
