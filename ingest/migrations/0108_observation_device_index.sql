-- Issue 17: observation_device_time (device_id, effective_at) goes. No query of the api
-- benchmark uses it (idx_scan 0 on every partition after its runs, while resident/code/time
-- and resident/time served every search, $lastn and page), nor the clinical runner; it cost
-- ~51 bytes per Observation on stock PostgreSQL (index entries inserted in device order into
-- a time-partitioned table). The one query that filters on device_id, the FHIR search
-- parameter ``device``, is answered with the resident indexes when a patient or subject is
-- given, and otherwise scans (device searches are support look-ups, not a hot path).
DROP INDEX IF EXISTS observation_device_time;
