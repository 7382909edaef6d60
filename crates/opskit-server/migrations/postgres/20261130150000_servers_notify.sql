-- Every change to the servers table tells every `opskit serve` replica which row changed, so each
-- can drop it from its read cache. pg_notify runs inside the writing transaction: PostgreSQL
-- delivers the notification only when that transaction commits (never for a rolled-back write),
-- and a trigger covers every writer (the API, an admin's psql, a future bulk import) alike.
CREATE FUNCTION opskit_servers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('opskit_servers', '*');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('opskit_servers', OLD.id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.id <> OLD.id) THEN
        PERFORM pg_notify('opskit_servers', NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER servers_notify AFTER INSERT OR UPDATE OR DELETE ON servers
    FOR EACH ROW EXECUTE FUNCTION opskit_servers_notify();
CREATE TRIGGER servers_notify_truncate AFTER TRUNCATE ON servers
    FOR EACH STATEMENT EXECUTE FUNCTION opskit_servers_notify();
