-- Access control, consent and audit for the api (issue 7). Read by ingest.store.access.
--
-- Who may see which resident is decided in SQL by ingest.store.access.scope_predicate, from
-- the acting user's role, neighbourhoods, the resident's assignments (resident.nurse_id,
-- resident.liaison_id) and, for liaison officers, an active consent. Every read of a
-- resident's health data writes an audit_event row in the same transaction.

CREATE TABLE app_user (
    id            text PRIMARY KEY,                  -- 'N01' (nurse), 'L10-03' (liaison), 'admin'
    username      text NOT NULL UNIQUE CHECK (username = lower(username)),
    display_name  text NOT NULL,
    role          text NOT NULL CHECK (role IN
                      ('nurse', 'therapist', 'liaison', 'station', 'gateway', 'admin')),
    password_hash text,                              -- scrypt$...; NULL = token-only service account
    station_id    text REFERENCES station (id),      -- station kiosks: the station they stand at
    gateway_id    text REFERENCES gateway (id),      -- gateway service accounts
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'station' OR station_id IS NOT NULL),
    CHECK (role <> 'gateway' OR gateway_id IS NOT NULL)
);

-- Neighbourhoods a member of staff covers (a nurse's 동, a therapist's rehab rooms).
CREATE TABLE user_neighbourhood (
    user_id       text NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    neighbourhood text NOT NULL,
    PRIMARY KEY (user_id, neighbourhood)
);

-- Web sessions: the cookie carries a random token; only its SHA-256 is stored.
CREATE TABLE user_session (
    token_hash    bytea PRIMARY KEY,
    user_id       text NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX user_session_user ON user_session (user_id);

-- Bearer tokens for services (gateways, integrations) and staff tablets.
CREATE TABLE api_token (
    token_hash    bytea PRIMARY KEY,
    id            text NOT NULL UNIQUE,              -- public handle shown to admins, never the token
    user_id       text NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

-- Login attempts for rate limiting. Keys are SHA-256 digests of the login name and the client
-- address, so the table holds no personal data in the clear.
CREATE TABLE login_attempt (
    at            timestamptz NOT NULL DEFAULT now(),
    name_digest   bytea NOT NULL,
    client_digest bytea NOT NULL,
    success       boolean NOT NULL
);
CREATE INDEX login_attempt_name ON login_attempt (name_digest, at DESC);
CREATE INDEX login_attempt_client ON login_attempt (client_digest, at DESC);

-- Consent to share (개인정보제공동의서): purpose, recipients (roles), period, withdrawal.
-- Withdrawal is a timestamp checked by every query at read time, so it takes effect at once.
CREATE TABLE consent (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    resident_id     text NOT NULL REFERENCES resident (id),
    purpose         text NOT NULL CHECK (purpose IN ('liaison-sharing', 'care-coordination')),
    recipient_roles text[] NOT NULL CHECK (cardinality(recipient_roles) > 0),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz,
    source          text,                            -- e.g. the paper form's reference
    recorded_by     text REFERENCES app_user (id),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    withdrawn_at    timestamptz,
    withdrawn_by    text REFERENCES app_user (id),
    CHECK (period_end IS NULL OR period_end > period_start)
);
CREATE INDEX consent_resident ON consent (resident_id);

-- Audit trail shaped like FHIR AuditEvent: who (agent), what (entity), when (recorded),
-- why (purpose_of_use), how it went (outcome). Never holds clinical values or names.
CREATE TABLE audit_event (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded        timestamptz NOT NULL DEFAULT clock_timestamp(),
    type_code       text NOT NULL,                   -- DICOM DCM: 110110 patient record, 110114 user authentication
    subtype         text NOT NULL,                   -- FHIR restful-interaction or our page/action name
    action          char(1) NOT NULL CHECK (action IN ('C', 'R', 'U', 'D', 'E')),
    outcome         text NOT NULL CHECK (outcome IN ('0', '4', '8', '12')),
    agent_user_id   text,                            -- NULL only for failed logins of unknown users
    agent_role      text,
    purpose_of_use  text,                            -- v3 PurposeOfUse: TREAT, CAREMGT, COC, PATRQT, HOPERAT
    resident_id     text,                            -- the patient whose data was touched
    entity          text NOT NULL,                   -- what: 'Observation?code=...', 'page:worklist'
    client_digest   bytea                            -- hashed network address
);
CREATE INDEX audit_event_recorded ON audit_event (recorded DESC);
CREATE INDEX audit_event_resident ON audit_event (resident_id, recorded DESC);
CREATE INDEX audit_event_agent ON audit_event (agent_user_id, recorded DESC);

-- Station check-ins: a resident identified by card at a station, which opens the gateway's
-- binding session. Recorded whether or not the command reached the gateway.
CREATE TABLE station_checkin (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    station_id    text NOT NULL REFERENCES station (id),
    gateway_id    text REFERENCES gateway (id),
    resident_id   text NOT NULL REFERENCES resident (id),
    by_user_id    text NOT NULL REFERENCES app_user (id),
    at            timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    delivered     boolean NOT NULL DEFAULT false,    -- published to the gateway (QoS 1 acknowledged)
    delivery_note text,                               -- why not, when not
    ended_at      timestamptz
);
CREATE INDEX station_checkin_station ON station_checkin (station_id, at DESC);

-- "Last reviewed by whom" (Tidepool's TIDE) and staff notes on a resident.
CREATE TABLE resident_review (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id   text NOT NULL REFERENCES resident (id),
    user_id       text NOT NULL REFERENCES app_user (id),
    at            timestamptz NOT NULL DEFAULT now(),
    note          text
);
CREATE INDEX resident_review_resident ON resident_review (resident_id, at DESC);
