-- TimescaleDB only (issue 12.7 b, d), checked by the reporter on TimescaleDB 2.28.3 / PG 15.20.
--
-- b. observation_daily refreshes the whole history that changed (start_offset => NULL). With
--    start_offset => 30 days, days older than 30 days that were never materialized dropped out
--    once the watermark moved (10,158 of 31,035 daily rows left after a 90-day load) and late
--    readings 30-60 days old were never counted, while the PostgreSQL variant recomputes
--    everything. NULL gave 0 differences, and a 10 ms refresh when nothing changed: the policy
--    only re-materializes buckets the invalidation log names.
SELECT remove_continuous_aggregate_policy('observation_daily', if_exists => true);
SELECT add_continuous_aggregate_policy('observation_daily',
    start_offset => NULL,
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour');

-- d. Columnstore layout: no segmentby, ordered by (resident_id, code, effective_at). Segmenting
--    by (resident_id, code) left a few rows per segment in 7-day chunks (about 3 readings per
--    resident and code a week), so the columnstore came out larger than the rowstore (ratio
--    0.93); one ordered run per chunk compresses the resident, code and time columns to long
--    runs and deltas: 3.9 times smaller on the same rows. The orderby's min/max metadata still
--    lets "one resident, one code, a time range" skip batches. Settings apply per chunk: chunks
--    already in the columnstore keep theirs until recompressed. See README "TimescaleDB".
ALTER TABLE observation SET (
    timescaledb.segmentby = '',
    timescaledb.orderby = 'resident_id, code, effective_at'
);
