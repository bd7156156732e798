-- The outbox trigger stamps each delivery with the moment it was made (clock_timestamp), not
-- the start of the notify event's transaction (now()): the delivery latency then excludes the
-- time the runner's batch spent before it (bench/alerts.py reports that leg on its own).
CREATE OR REPLACE FUNCTION daon_fan_out_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    made integer;
BEGIN
    INSERT INTO delivery (subscription_id, event_id, flag_id, resident_id, idempotency_key,
                          due_at, created_at)
    SELECT s.id, e.id, e.flag_id, e.resident_id, s.id || '-' || e.id,
           greatest(coalesce(e.deliver_after, now()), now()), clock_timestamp()
    FROM new_events e
    JOIN subscription s
      ON s.status IN ('requested', 'active', 'error') AND s.deleted_at IS NULL
     AND (s.resident_id IS NULL OR s.resident_id = e.resident_id)
     AND (s.end_at IS NULL OR s.end_at > now())
    WHERE e.kind = 'notify'
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS made = ROW_COUNT;
    IF made > 0 THEN
        PERFORM pg_notify('daon_delivery', '');
    END IF;
    RETURN NULL;
END $$;
