-- Issue 17: every stored resource has been moved into template_id + remainder by 0105.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM observation WHERE resource IS NOT NULL) THEN
        RAISE EXCEPTION 'observations still hold a resource: migration 0105 did not finish';
    END IF;
END $$;
ALTER TABLE observation DROP COLUMN resource;
