-- The alerts sent for an incident (the incidents API, the status page) are looked up by
-- incident: without this index each lookup scans the whole outbox.
CREATE INDEX outbox_incident ON outbox (incident_id);
