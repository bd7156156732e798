-- Observations on TimescaleDB (2.28 API, PostgreSQL 15): a hypertable on effective_at with
-- the columnstore (compression) and retention policies and a continuous aggregate of daily
-- per-resident, per-code summaries. Keep the columns identical to 0001_observations.postgres.sql.

CREATE TABLE observation (
    id               uuid        NOT NULL,
    effective_at     timestamptz NOT NULL,
    resident_id      text,
    code             text        NOT NULL,
    code_system      text        NOT NULL,
    value            double precision,
    unit             text,
    component_values jsonb,
    device_id        text,
    gateway_id       text,
    centre_id        text,
    status           text        NOT NULL,
    identifier       text        NOT NULL,
    resource         jsonb       NOT NULL,
    received_at      timestamptz,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, effective_at)          -- unique keys on a hypertable include the time column
);

SELECT create_hypertable('observation', by_range('effective_at', INTERVAL '7 days'));

CREATE INDEX observation_resident_code_time ON observation (resident_id, code, effective_at DESC);
CREATE INDEX observation_device_time ON observation (device_id, effective_at DESC);

-- De-duplication lives in an ordinary table (see the postgres variant for why).
CREATE TABLE observation_identity (
    identifier     text        PRIMARY KEY,
    observation_id uuid        NOT NULL,
    effective_at   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Columnstore: segment by resident (the unit of every clinical query), newest first.
ALTER TABLE observation SET (
    timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'resident_id, code',
    timescaledb.orderby = 'effective_at DESC'
);
CALL add_columnstore_policy('observation', after => INTERVAL '30 days');

-- Retention: health records are kept 10 years; chunks older than that are dropped.
SELECT add_retention_policy('observation', drop_after => INTERVAL '10 years');

INSERT INTO daon_meta (key, value) VALUES ('observation_retention', '10 years')
ON CONFLICT (key) DO NOTHING;

-- The same partition maintenance API as the postgres variant, as no-ops (chunks are automatic).
CREATE FUNCTION daon_ensure_observation_partitions(from_month date, months integer)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
CREATE FUNCTION daon_drop_old_observation_partitions(keep interval)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

CREATE MATERIALIZED VIEW observation_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    time_bucket(INTERVAL '1 day', effective_at, 'Asia/Seoul')  AS day,
    resident_id,
    code,
    count(*)                                                   AS n,
    avg(value)                                                 AS value_avg,
    min(value)                                                 AS value_min,
    max(value)                                                 AS value_max,
    avg((component_values ->> '8480-6')::double precision)     AS systolic_avg,
    avg((component_values ->> '8462-4')::double precision)     AS diastolic_avg
FROM observation
WHERE resident_id IS NOT NULL
GROUP BY 1, 2, 3
WITH NO DATA;

SELECT add_continuous_aggregate_policy('observation_daily',
    start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour');
