-- PostgreSQL only. The store's clock as a function every statement calls (the
-- testing kit replaces it with one that follows a virtual clock), and the trigger
-- that announces runnable and finished runs on the schema's channel.
CREATE OR REPLACE FUNCTION durably_now() RETURNS double precision
    LANGUAGE sql VOLATILE
    AS $$ SELECT extract(epoch from clock_timestamp())::double precision $$;

CREATE OR REPLACE FUNCTION announce_run() RETURNS trigger AS $$
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

DROP TRIGGER IF EXISTS runs_announce ON runs;
CREATE TRIGGER runs_announce AFTER INSERT OR UPDATE OF status, available_at, owner
    ON runs FOR EACH ROW EXECUTE FUNCTION announce_run();
