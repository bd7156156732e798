-- Clinical runner (issue 6): risk flags and their lifecycle, follow-up tasks, the visiting
-- group, and the runner's cursors. Written by clinical.runner through ingest.store.clinical;
-- the api reads flags and tasks and records staff actions (acknowledge, snooze, resolve).
--
-- Rule semantics and alarm hygiene: ../shared/reference/clinical-rules.md §0, §9, §10.

-- One row per flag. At most one open flag (open / acknowledged / snoozed) per resident and rule.
CREATE TABLE risk_flag (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id        text        NOT NULL REFERENCES resident (id),
    rule               text        NOT NULL,              -- 'BP-CRISIS'
    rule_set           text        NOT NULL,              -- version that raised it ('2026.11-1')
    severity           text        NOT NULL CHECK (severity IN ('critical', 'urgent', 'routine', 'info')),
    recipients         text[]      NOT NULL,              -- nurse, rehab, liaison, resident
    state              text        NOT NULL CHECK (state IN
                           ('open', 'acknowledged', 'snoozed', 'resolved', 'superseded')),
    opened_at          timestamptz NOT NULL,
    alerted_at         timestamptz NOT NULL,              -- start of the current alert
    summary            text        NOT NULL,              -- values included: clinical staff only
    evidence           uuid[]      NOT NULL DEFAULT '{}', -- Observation ids the flag cites
    last_evidence_at   timestamptz,
    last_notified_at   timestamptz,
    peak_value         double precision,
    reminders          smallint    NOT NULL DEFAULT 0,
    escalation         smallint    NOT NULL DEFAULT 0,    -- 1 nurse team lead, 2 liaison welfare check
    acknowledged_at    timestamptz,
    acknowledged_by    text,
    acknowledged_value double precision,
    snoozed_until      timestamptz,
    snooze_reason      text,
    closed_at          timestamptz,
    close_reason       text,
    rearmed            boolean     NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'snoozed' OR (snoozed_until IS NOT NULL AND snooze_reason <> '')),
    CHECK ((state IN ('resolved', 'superseded')) = (closed_at IS NOT NULL))
);
CREATE UNIQUE INDEX risk_flag_one_open ON risk_flag (resident_id, rule)
    WHERE state IN ('open', 'acknowledged', 'snoozed');
CREATE INDEX risk_flag_resident ON risk_flag (resident_id, opened_at DESC);
CREATE INDEX risk_flag_open_severity ON risk_flag (severity, alerted_at)
    WHERE state IN ('open', 'acknowledged', 'snoozed');

-- Everything that happened to a flag: raised, notifications (an outbox: a push sender marks
-- delivered_at), staff actions, escalations, closing. Never updated except delivered_at.
CREATE TABLE flag_event (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flag_id        bigint      REFERENCES risk_flag (id),
    resident_id    text        NOT NULL,
    rule           text        NOT NULL,
    at             timestamptz NOT NULL,
    kind           text        NOT NULL,               -- clinical.lifecycle.ActionKind or a staff action
    notice         text        NOT NULL,               -- clinical.lifecycle.Notice or the staff action
    targets        text[]      NOT NULL DEFAULT '{}',  -- nurse, rehab, liaison, resident, nurse_lead
    severity       text,
    actor          text,                               -- staff user id for staff actions
    detail         text,
    deliver_after  timestamptz,                        -- quiet hours (§10.2.7)
    delivered_at   timestamptz
);
CREATE INDEX flag_event_flag ON flag_event (flag_id, at);
CREATE INDEX flag_event_undelivered ON flag_event (at) WHERE kind = 'notify' AND delivered_at IS NULL;

-- Follow-up tasks (FHIR Task): one per flag and recipient role, plus escalation welfare checks
-- and visit-schedule notes for liaison officers (no flag, plain language).
CREATE TABLE follow_up_task (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identifier       text        NOT NULL UNIQUE,      -- opaque (clinical.resources.task_key)
    flag_id          bigint      REFERENCES risk_flag (id),
    resident_id      text        NOT NULL REFERENCES resident (id),
    role             text        NOT NULL,             -- nurse, rehab, liaison, nurse_lead
    owner_id         text,                             -- the assigned person, else the role's queue
    priority         text        NOT NULL CHECK (priority IN ('routine', 'urgent', 'asap', 'stat')),
    status           text        NOT NULL,             -- FHIR Task.status
    business_status  text        NOT NULL,             -- open, acknowledged, snoozed, escalated, resolved, superseded
    due_at           timestamptz NOT NULL,
    description      text        NOT NULL,             -- liaison tasks: plain language, no values
    resource         jsonb       NOT NULL,             -- the FHIR Task as served
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    closed_at        timestamptz
);
CREATE INDEX follow_up_task_open ON follow_up_task (role, owner_id, due_at) WHERE closed_at IS NULL;
CREATE INDEX follow_up_task_resident ON follow_up_task (resident_id, created_at DESC);
CREATE INDEX follow_up_task_flag ON follow_up_task (flag_id);

-- The visiting-programme group (§9), recomputed with the flags.
CREATE TABLE visiting_group (
    resident_id     text        PRIMARY KEY REFERENCES resident (id),
    grp             text        NOT NULL CHECK (grp IN ('intensive', 'regular', 'self_management', 'none')),
    since           date        NOT NULL,
    visits          text        NOT NULL,
    reason          text        NOT NULL,
    next_visit_due  date,
    reassess_by     date,
    rule_set        text        NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Per-resident cursor: the newest Observation.stored_at the runner has evaluated, so that a
-- restart re-reads only a safety margin of data (and the lifecycle ignores what it has seen).
CREATE TABLE clinical_cursor (
    resident_id   text        PRIMARY KEY REFERENCES resident (id),
    watermark     timestamptz NOT NULL,
    evaluated_at  timestamptz NOT NULL
);

-- Runner-wide state: the catch-up watermark (all Observations stored before it, minus the
-- margin, have been evaluated).
CREATE TABLE clinical_runner (
    key    text PRIMARY KEY,
    value  timestamptz NOT NULL
);

-- The catch-up query at start: residents with Observations stored since the watermark.
CREATE INDEX observation_stored_at ON observation (stored_at);
