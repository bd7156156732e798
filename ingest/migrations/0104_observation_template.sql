-- Issue 17 (docs/storage.md): an Observation is stored as typed columns, the id of a compiled
-- per-shape template and a compact remainder (the slot values the columns do not give), and
-- the served resource is rendered from them on write and on read (ingest.fhir.stored). This
-- migration adds the template table and the two columns; 0105 moves every stored resource
-- into them (in batches, resumable) and 0106 drops the resource column.
--
-- A template is the resource of one shape with placeholders; its id is the first 31 bits of
-- the SHA-256 of its text, so every process and database agrees on it (ingest.fhir.stored).
CREATE TABLE observation_template (
    id         integer     PRIMARY KEY
               CHECK (id = (('x' || substr(encode(sha256(convert_to(body, 'UTF8')), 'hex'), 1, 8))
                            ::bit(32)::integer & 2147483647)),
    body       text        NOT NULL,   -- canonical compact JSON with placeholders
    skeleton   jsonb       NOT NULL,   -- the same as jsonb: searches on code, category, systems
    rest       text        NOT NULL,   -- remainder slot names, comma-separated, in order
    created_at timestamptz NOT NULL DEFAULT now()
);

-- template_id NULL: the remainder is the whole served resource (a shape no template describes)
ALTER TABLE observation
    ADD COLUMN template_id integer,
    ADD COLUMN remainder text;
ALTER TABLE observation ALTER COLUMN resource DROP NOT NULL;

-- The skeleton (template_id set) or the stored resource (NULL): what searches on the static
-- parts of a resource (code codings, categories, identifier systems) look into.
CREATE FUNCTION daon_observation_doc(template integer, remainder text)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN template IS NULL THEN remainder::jsonb
                ELSE (SELECT t.skeleton FROM observation_template t WHERE t.id = template) END
$$;
