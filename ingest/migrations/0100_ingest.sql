-- Ingest: what readings become besides Observations, and what the clinical runner filters on.
-- Nothing is dropped silently: a message or reading that cannot be decoded, bound or mapped is a
-- dead letter (raw bytes + reason); a reading without a resident, or with a time that cannot be
-- right, waits in the unbound queue for staff; every outcome is counted per gateway.

-- Facts the clinical runner filters on without parsing the resource.
ALTER TABLE observation
    ADD COLUMN quality text[],        -- device status names (cli-decode.md), 'questionable'
    ADD COLUMN context jsonb;         -- {"setting","binding","meal","sample_type","user_index",...}

-- Messages and readings that cannot become Observations. Idempotent on ``digest`` (the same
-- bytes again, e.g. a redelivery after a crash, bump ``occurrences`` instead of a new row).
CREATE TABLE dead_letter (
    id            bigserial   PRIMARY KEY,
    digest        text        NOT NULL UNIQUE,      -- sha256 of (topic, gateway, reading id, raw)
    received_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    occurrences   integer     NOT NULL DEFAULT 1,
    topic         text,
    gateway_id    text,
    reading_id    text,
    device_id     text,
    reason        text        NOT NULL,             -- ingest.errors.Reason value
    error_class   text,                             -- the exception class, for support
    detail        text        NOT NULL,             -- what and why, for staff (Korean + English)
    raw           bytea       NOT NULL,             -- the message or reading exactly as received
    state         text        NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'replayed', 'dismissed')),
    resolved_by   text,
    resolved_at   timestamptz
);
CREATE INDEX dead_letter_received ON dead_letter (received_at DESC);
CREATE INDEX dead_letter_gateway ON dead_letter (gateway_id, received_at DESC);

-- Readings waiting for staff: no resident bound, a clock that cannot be right, an unmapped
-- user slot. Decisions are reversible and recorded in unbound_event.
CREATE TABLE unbound_reading (
    id                 bigserial   PRIMARY KEY,
    gateway_id         text        NOT NULL,
    reading_id         text        NOT NULL,       -- the wire reading id (gateway outbox id)
    centre_id          text,
    station_id         text,
    device_id          text        NOT NULL,
    kind               text        NOT NULL,
    reason             text        NOT NULL,       -- no_binding | implausible_time | unknown_user
    detail             text,
    measured_at        timestamptz,
    received_at        timestamptz NOT NULL,
    summary            text        NOT NULL,       -- what the queue shows (Korean first)
    record             jsonb       NOT NULL,       -- ingest.fhir.UnboundRecord.as_json()
    reading            jsonb       NOT NULL,       -- the wire reading (devices.wire JSON)
    suggested_resident text,                       -- e.g. the binding of a held reading
    state              text        NOT NULL DEFAULT 'pending'
                                   CHECK (state IN ('pending', 'assigned', 'discarded')),
    resident_id        text        REFERENCES resident (id),
    decided_by         text,
    decided_at         timestamptz,
    decision_note      text,
    observation_ids    uuid[],                     -- created when assigned
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, reading_id)
);
CREATE INDEX unbound_reading_pending ON unbound_reading (centre_id, received_at DESC)
    WHERE state = 'pending';

CREATE TABLE unbound_event (
    id          bigserial   PRIMARY KEY,
    unbound_id  bigint      NOT NULL REFERENCES unbound_reading (id),
    action      text        NOT NULL CHECK (action IN ('assign', 'discard', 'restore')),
    by_user     text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    resident_id text,
    note        text
);
CREATE INDEX unbound_event_unbound ON unbound_event (unbound_id, at);

-- Provenance of bindings: which check-in session, registry mapping or staff decision bound
-- which Observations to whom. One row per (message, resident, method, session); the FHIR
-- Provenance is rendered from these columns (ingest.store.observations.provenance_resource).
CREATE TABLE binding_provenance (
    id              uuid        PRIMARY KEY,       -- deterministic (see the store)
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    resident_id     text        NOT NULL,
    method          text        NOT NULL CHECK (method IN ('check-in', 'registry', 'staff')),
    session_id      text,
    gateway_id      text,
    station_id      text,
    by_user         text,
    reading_ids     text[]      NOT NULL,
    observation_ids uuid[]      NOT NULL
);
CREATE INDEX binding_provenance_resident ON binding_provenance (resident_id, recorded_at DESC);
CREATE INDEX binding_provenance_observation ON binding_provenance USING gin (observation_ids);

-- Per-gateway counters (readings unless named otherwise).
CREATE TABLE gateway_counter (
    gateway_id      text        PRIMARY KEY,
    messages        bigint      NOT NULL DEFAULT 0,
    received        bigint      NOT NULL DEFAULT 0,
    stored          bigint      NOT NULL DEFAULT 0,   -- readings with at least one new Observation
    observations    bigint      NOT NULL DEFAULT 0,   -- Observations written
    duplicate       bigint      NOT NULL DEFAULT 0,   -- readings already stored (replays, resends)
    dead_lettered   bigint      NOT NULL DEFAULT 0,
    unbound         bigint      NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    last_stored_at  timestamptz
);
