-- Delivery of notify events to external receivers (issue 11.1, 11.3b): FHIR R4 Subscriptions
-- with a rest-hook channel, and a durable outbox of deliveries. Written by api.store.delivery;
-- sent by api.delivery (the delivering service, `daon deliver`, also run by `daon demo`).
--
-- The outbox rows are made by a trigger in the same transaction as the notify event, so an
-- event that exists always has its deliveries: nothing is lost between the runner's commit and
-- the delivering service, whatever crashes when.

CREATE TABLE subscription (
    id               text        PRIMARY KEY,                -- FHIR id
    status           text        NOT NULL CHECK (status IN ('requested', 'active', 'error', 'off')),
    criteria         text        NOT NULL,                   -- 'Flag' or 'Flag?patient=R0000001'
    resident_id      text,                                   -- from the criteria; NULL = every resident
    endpoint         text        NOT NULL,                   -- http(s) URL
    headers          text[]      NOT NULL DEFAULT '{}',      -- channel.header ('Name: value')
    payload          text,                                   -- 'application/fhir+json' or NULL (empty POST)
    reason           text        NOT NULL,
    end_at           timestamptz,                            -- Subscription.end: off afterwards
    error            text,                                   -- why status is 'error'
    created_by       text        NOT NULL,                   -- app_user id (admin or token's user)
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer     NOT NULL DEFAULT 1,
    deleted_at       timestamptz,                            -- FHIR delete: status off, reads 410
    -- receiver health and per-receiver scheduling (a failing receiver waits alone)
    failures         integer     NOT NULL DEFAULT 0,         -- consecutive failed attempts
    retry_at         timestamptz,                            -- receiver backed off until then
    last_success_at  timestamptz,
    last_failure_at  timestamptz,
    CHECK (endpoint ~ '^https?://')
);
CREATE INDEX subscription_resident ON subscription (resident_id) WHERE status <> 'off';

-- One row per (subscription, notify event): the outbox. ``idempotency_key`` is sent as the
-- Idempotency-Key header on every attempt, so a receiver can drop repeats.
CREATE TABLE delivery (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  text        NOT NULL REFERENCES subscription (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL REFERENCES flag_event (id),
    flag_id          bigint      REFERENCES risk_flag (id),
    resident_id      text        NOT NULL,
    idempotency_key  text        NOT NULL UNIQUE,
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    due_at           timestamptz NOT NULL,                   -- next attempt not before
    lease_until      timestamptz,                            -- claimed by a sender until then
    attempts         integer     NOT NULL DEFAULT 0,
    delivered_at     timestamptz,
    last_status      integer,
    last_error       text,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX delivery_due ON delivery (due_at) WHERE state = 'pending';
CREATE INDEX delivery_subscription ON delivery (subscription_id, created_at DESC);

-- Every attempt and its outcome (the receiver's acknowledgement is a 2xx answer).
CREATE TABLE delivery_attempt (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint      NOT NULL REFERENCES delivery (id) ON DELETE CASCADE,
    at               timestamptz NOT NULL,
    outcome          text        NOT NULL CHECK (outcome IN
                         ('delivered', 'http-error', 'redirect', 'timeout', 'refused', 'error')),
    status_code      integer,
    duration_ms      integer     NOT NULL,
    detail           text
);
CREATE INDEX delivery_attempt_delivery ON delivery_attempt (delivery_id, at);

-- The outbox trigger: a notify event becomes one delivery per matching live subscription.
CREATE FUNCTION daon_fan_out_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    made integer;
BEGIN
    INSERT INTO delivery (subscription_id, event_id, flag_id, resident_id, idempotency_key, due_at)
    SELECT s.id, e.id, e.flag_id, e.resident_id, s.id || '-' || e.id,
           greatest(coalesce(e.deliver_after, now()), now())
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

CREATE TRIGGER flag_event_fan_out AFTER INSERT ON flag_event
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION daon_fan_out_notify();

-- Bearer-token scopes (api.store.access.SCOPE_CAPABILITIES): what a token adds to its user's
-- role, e.g. 'system/Subscription.*' for a relay's service account.
ALTER TABLE api_token ADD COLUMN scopes text[] NOT NULL DEFAULT '{}';
