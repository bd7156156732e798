-- FHIR versions of the resources that change (issue 16.4): Task (runner, staff actions, the FHIR
-- API) and Flag / RiskAssessment (the runner re-renders them as the flag moves).
--
-- Every change of the served resource is a new version, whoever writes it, so triggers keep the
-- version number, the last-updated instant and one fhir_history row per version (what
-- GET [type]/[id]/_history serves). A write that leaves the resource as it was is no version.
ALTER TABLE follow_up_task
    ADD COLUMN fhir_version integer NOT NULL DEFAULT 1,
    ADD COLUMN fhir_updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE risk_flag
    ADD COLUMN fhir_version integer NOT NULL DEFAULT 0,
    ADD COLUMN fhir_updated_at timestamptz;

CREATE TABLE fhir_history (
    resource_type text        NOT NULL CHECK (resource_type IN ('Task', 'Flag')),
    id            bigint      NOT NULL,
    version       integer     NOT NULL,
    resource      jsonb       NOT NULL,           -- as stored (the api adds id and meta)
    extra         jsonb,                          -- Flag: the RiskAssessment of that version
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (resource_type, id, version)
);

-- what exists already is version 1
INSERT INTO fhir_history (resource_type, id, version, resource, recorded_at)
SELECT 'Task', id, 1, resource, updated_at FROM follow_up_task;
UPDATE follow_up_task SET fhir_updated_at = updated_at;
UPDATE risk_flag SET fhir_version = 1, fhir_updated_at = coalesce(closed_at, opened_at)
WHERE fhir_flag IS NOT NULL;
INSERT INTO fhir_history (resource_type, id, version, resource, extra, recorded_at)
SELECT 'Flag', id, 1, fhir_flag, fhir_risk_assessment, fhir_updated_at
FROM risk_flag WHERE fhir_flag IS NOT NULL;

CREATE FUNCTION fhir_task_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.resource IS NOT DISTINCT FROM OLD.resource THEN
            NEW.fhir_version := OLD.fhir_version;
            NEW.fhir_updated_at := OLD.fhir_updated_at;
            RETURN NEW;
        END IF;
        NEW.fhir_version := OLD.fhir_version + 1;
    ELSE
        NEW.fhir_version := 1;
    END IF;
    NEW.fhir_updated_at := clock_timestamp();
    INSERT INTO fhir_history (resource_type, id, version, resource, recorded_at)
    VALUES ('Task', NEW.id, NEW.fhir_version, NEW.resource, NEW.fhir_updated_at)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER follow_up_task_fhir_version BEFORE INSERT OR UPDATE ON follow_up_task
    FOR EACH ROW EXECUTE FUNCTION fhir_task_version();

CREATE FUNCTION fhir_flag_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.fhir_flag IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.fhir_flag IS NOT DISTINCT FROM OLD.fhir_flag
           AND NEW.fhir_risk_assessment IS NOT DISTINCT FROM OLD.fhir_risk_assessment THEN
            NEW.fhir_version := OLD.fhir_version;
            NEW.fhir_updated_at := OLD.fhir_updated_at;
            RETURN NEW;
        END IF;
        NEW.fhir_version := OLD.fhir_version + 1;
    ELSE
        NEW.fhir_version := 1;
    END IF;
    NEW.fhir_updated_at := clock_timestamp();
    INSERT INTO fhir_history (resource_type, id, version, resource, extra, recorded_at)
    VALUES ('Flag', NEW.id, NEW.fhir_version, NEW.fhir_flag, NEW.fhir_risk_assessment,
            NEW.fhir_updated_at)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER risk_flag_fhir_version BEFORE INSERT OR UPDATE ON risk_flag
    FOR EACH ROW EXECUTE FUNCTION fhir_flag_version();
