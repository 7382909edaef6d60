-- High availability: one leader among the `opskit monitor run` processes that share a database.
-- The leader holds this row (renewed every lease/3); a follower takes it over only once it has
-- expired, and every takeover increases `token`. Times are the database's clock in ms since
-- the epoch, so the hosts' clocks do not matter.
CREATE TABLE leader_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    renewed_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- The fencing token of the leader that claimed an outbox row for delivery: a deposed leader's
-- retry bookkeeping no longer touches a row its successor has claimed.
ALTER TABLE outbox ADD COLUMN claim_token BIGINT;
ALTER TABLE outbox ADD COLUMN claimed_ms BIGINT;
