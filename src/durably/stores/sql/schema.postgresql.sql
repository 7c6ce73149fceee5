-- PostgreSQL's part of a fresh install (see schema.sql): the store's clock and
-- the trigger that announces runnable and finished runs.
CREATE FUNCTION durably_now() RETURNS double precision
    LANGUAGE sql VOLATILE
    AS $$ SELECT extract(epoch from clock_timestamp())::double precision $$;

CREATE FUNCTION announce_run() RETURNS trigger AS $$
BEGIN
    IF NEW.owner IS NULL AND NEW.available_at IS NOT NULL
       AND NEW.available_at <= durably_now() THEN
        PERFORM pg_notify('{channel}', 'ready');
    END IF;
    IF NEW.status IN ('completed', 'failed', 'cancelled') THEN
        PERFORM pg_notify('{channel}', 'done:' || NEW.run_id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql SET search_path FROM CURRENT;

CREATE TRIGGER runs_announce AFTER INSERT OR UPDATE OF status, available_at, owner
    ON runs FOR EACH ROW EXECUTE FUNCTION announce_run();
