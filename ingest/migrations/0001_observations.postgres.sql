-- Observations on stock PostgreSQL: native declarative partitioning by month on effective_at,
-- a materialized view in place of TimescaleDB's continuous aggregate, and maintenance
-- functions for partitions ahead of time and retention (dropping whole old partitions).
-- Keep the columns identical to 0001_observations.timescale.sql.

CREATE TABLE observation (
    id               uuid        NOT NULL,          -- FHIR logical id (deterministic from identifier)
    effective_at     timestamptz NOT NULL,          -- corrected clinical time (Asia/Seoul offset in the resource)
    resident_id      text,                          -- Patient id; NULL for device-subject observations
    code             text        NOT NULL,          -- primary code (LOINC where one exists, else MDC)
    code_system      text        NOT NULL,
    value            double precision,              -- primary numeric value (NULL for panels and absent values)
    unit             text,                          -- UCUM
    component_values jsonb,                         -- {"8480-6": 120, "8462-4": 80, ...} for panels
    device_id        text,
    gateway_id       text,
    centre_id        text,
    status           text        NOT NULL,          -- FHIR Observation.status
    identifier       text        NOT NULL,          -- PHD conditional-create identifier (dedup key)
    resource         jsonb       NOT NULL,          -- the FHIR R4 Observation as served
    received_at      timestamptz,                   -- gateway receive time
    stored_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, effective_at)
) PARTITION BY RANGE (effective_at);

CREATE INDEX observation_resident_code_time ON observation (resident_id, code, effective_at DESC);
CREATE INDEX observation_device_time ON observation (device_id, effective_at DESC);

-- De-duplication: unique on the conditional-create identifier in an ordinary table, written in
-- the same transaction (a partitioned or hyper table can only be unique on keys that include
-- the partitioning column, and corrected times differ between gateways).
CREATE TABLE observation_identity (
    identifier     text        PRIMARY KEY,
    observation_id uuid        NOT NULL,
    effective_at   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE observation_default PARTITION OF observation DEFAULT;

-- Create monthly partitions covering [from_month, from_month + months). Idempotent.
CREATE FUNCTION daon_ensure_observation_partitions(from_month date, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    created integer := 0;
    start_month date := date_trunc('month', from_month)::date;
    lo date;
    hi date;
    part text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        lo := (start_month + make_interval(months => i))::date;
        hi := (lo + interval '1 month')::date;
        part := format('observation_%s', to_char(lo, 'YYYYMM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF observation FOR VALUES FROM (%L) TO (%L)',
                part, lo::timestamptz, hi::timestamptz);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Retention: drop monthly partitions that end before now() - keep. Returns how many.
CREATE FUNCTION daon_drop_old_observation_partitions(keep interval)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    dropped integer := 0;
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'observation'::regclass AND c.relname ~ '^observation_[0-9]{6}$'
    LOOP
        IF (to_date(substr(r.relname, 13), 'YYYYMM') + interval '1 month') < now() - keep THEN
            EXECUTE format('DROP TABLE %I', r.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

-- Two years back (late uploads of stored device memories) and a year ahead.
SELECT daon_ensure_observation_partitions((now() - interval '24 months')::date, 37);

INSERT INTO daon_meta (key, value) VALUES ('observation_retention', '10 years')
ON CONFLICT (key) DO NOTHING;

-- Daily per-resident, per-code summaries (refreshed by the services; see store.refresh_daily).
CREATE MATERIALIZED VIEW observation_daily AS
SELECT
    date_trunc('day', effective_at AT TIME ZONE 'Asia/Seoul') AT TIME ZONE 'Asia/Seoul' AS day,
    resident_id,
    code,
    count(*)                                                  AS n,
    avg(value)                                                AS value_avg,
    min(value)                                                AS value_min,
    max(value)                                                AS value_max,
    avg((component_values ->> '8480-6')::double precision)    AS systolic_avg,
    avg((component_values ->> '8462-4')::double precision)    AS diastolic_avg
FROM observation
WHERE resident_id IS NOT NULL
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE UNIQUE INDEX observation_daily_key ON observation_daily (resident_id, code, day);
