-- Each consent decision kept as the FHIR Consent it is (issue 14.3): written on every grant,
-- withdrawal and undo by api.store.access, so what staff saw and what the record says agree.
ALTER TABLE consent ADD COLUMN resource jsonb;
