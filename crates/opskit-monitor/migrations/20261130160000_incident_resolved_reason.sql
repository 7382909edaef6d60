-- Why an incident closed other than by its monitor recovering (for example "monitor removed":
-- its monitor left the configuration while the incident was open). NULL when it recovered.
ALTER TABLE incidents ADD COLUMN resolved_reason TEXT;
