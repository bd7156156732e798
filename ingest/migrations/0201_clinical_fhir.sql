-- The FHIR Flag and RiskAssessment of every risk flag, rendered by the clinical runner when the
-- flag changes (the api serves them as stored; liaison officers never get them).
ALTER TABLE risk_flag
    ADD COLUMN fhir_flag jsonb,
    ADD COLUMN fhir_risk_assessment jsonb;
