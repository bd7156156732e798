-- Conflicting duplicates (issue 12.4): a reading with the identifier of a stored one (same
-- device, resident, code and device-time second) but another value is not a replay. The identity
-- row keeps a short digest of the stored value (ingest.store.observations.value_key) so the
-- consumer tells the two apart in one statement per batch; rows stored before have NULL and
-- compare as replays. Such readings become dead letters (reason 'conflicting_duplicate') and
-- are counted per gateway.
ALTER TABLE observation_identity ADD COLUMN value_key text;
ALTER TABLE gateway_counter ADD COLUMN conflict bigint NOT NULL DEFAULT 0;

-- Issue 12.7c: statements that touch observation rows name their time, so a hypertable touches
-- one chunk (on a compressed chunk an update by id alone decompresses every batch). The unbound
-- queue keeps the times of the Observations an assignment created, beside their ids.
ALTER TABLE unbound_reading ADD COLUMN observation_times timestamptz[];
UPDATE unbound_reading u SET observation_times = (
    SELECT array_agg(o.effective_at ORDER BY k.ord)
    FROM unnest(u.observation_ids) WITH ORDINALITY AS k(id, ord)
    LEFT JOIN observation o ON o.id = k.id)
WHERE u.observation_ids IS NOT NULL;
