-- Per-gateway counters are kept per ingest worker: two workers sharing the gateways' load would
-- otherwise update the same row in every batch and wait on each other's commits. Readers sum
-- over workers (ingest.store.observations.read_counters).
ALTER TABLE gateway_counter ADD COLUMN worker text NOT NULL DEFAULT 'ingest';
ALTER TABLE gateway_counter DROP CONSTRAINT gateway_counter_pkey;
ALTER TABLE gateway_counter ADD PRIMARY KEY (gateway_id, worker);
