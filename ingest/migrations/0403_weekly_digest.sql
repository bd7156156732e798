-- The routine tier's weekly digest (clinical-rules.md §0 and §10.2.1: routine -> worklist and a
-- weekly digest): one per nurse and week, made by the clinical runner on its clock
-- (clinical.digest), delivered through the same durable outbox as the alerts: a FHIR R4
-- Subscription on `Communication` (or `Communication?recipient=<staff id>`) gets each digest as
-- a Communication, with an Idempotency-Key; the web app shows it to its nurse (/digest).
CREATE TABLE digest (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id   text        NOT NULL,                -- the nurse (app_user id)
    week_start     date        NOT NULL,                -- Monday (Asia/Seoul) of the week covered
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    made_at        timestamptz NOT NULL,
    deliver_after  timestamptz NOT NULL,                -- the first staffed opening after the week
    items          jsonb       NOT NULL,                -- clinical.digest.DigestItem, in order
    communication  jsonb       NOT NULL,                -- the FHIR R4 Communication
    UNIQUE (recipient_id, week_start)
);

-- One row per week the runner has made the digests of (also when nobody had routine items).
CREATE TABLE digest_run (
    week_start     date        PRIMARY KEY,
    made_at        timestamptz NOT NULL,
    digests        integer     NOT NULL
);

ALTER TABLE subscription ADD COLUMN recipient_id text;   -- Communication?recipient=

ALTER TABLE delivery ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE delivery ALTER COLUMN resident_id DROP NOT NULL;
ALTER TABLE delivery ADD COLUMN digest_id bigint REFERENCES digest (id);
ALTER TABLE delivery ADD CONSTRAINT delivery_one_source
    CHECK ((event_id IS NULL) <> (digest_id IS NULL));
ALTER TABLE delivery ADD CONSTRAINT delivery_digest_once UNIQUE (subscription_id, digest_id);

-- Flag notify events go to subscriptions on Flag only.
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
     AND s.criteria LIKE 'Flag%'
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

-- A digest becomes one delivery per matching subscription on Communication, due when the
-- digest is (its deliver_after: the first staffed opening after the week).
CREATE FUNCTION daon_fan_out_digest() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    made integer;
BEGIN
    INSERT INTO delivery (subscription_id, digest_id, idempotency_key, due_at, created_at)
    SELECT s.id, g.id, s.id || '-digest-' || g.id, greatest(g.deliver_after, now()),
           clock_timestamp()
    FROM new_digests g
    JOIN subscription s
      ON s.status IN ('requested', 'active', 'error') AND s.deleted_at IS NULL
     AND s.criteria LIKE 'Communication%'
     AND (s.recipient_id IS NULL OR s.recipient_id = g.recipient_id)
     AND (s.end_at IS NULL OR s.end_at > now())
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS made = ROW_COUNT;
    IF made > 0 THEN
        PERFORM pg_notify('daon_delivery', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER digest_fan_out AFTER INSERT ON digest
    REFERENCING NEW TABLE AS new_digests
    FOR EACH STATEMENT EXECUTE FUNCTION daon_fan_out_digest();
