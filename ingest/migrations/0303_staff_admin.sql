-- Staff administration in the browser (issue 14.3, 14.4, 14.7).

-- A dead letter discarded by an administrator says why (dismissed with a reason).
ALTER TABLE dead_letter ADD COLUMN resolution_note text;

-- Consent decisions say why and when; a grant recorded in error can be undone the same day
-- (kept, marked cancelled); a withdrawal can be undone the same day (withdrawn_* cleared, the
-- audit trail keeps both steps).
ALTER TABLE consent
    ADD COLUMN reason          text,          -- why it was granted (e.g. the signed form)
    ADD COLUMN withdraw_reason text,          -- why it was withdrawn
    ADD COLUMN cancelled_at    timestamptz,   -- a grant recorded in error, undone
    ADD COLUMN cancelled_by    text REFERENCES app_user (id);

-- New residents (junggu-district.md "New residents"): when they moved in and whether they
-- receive basic livelihood benefits (welfare recipients are contacted by their liaison officer).
ALTER TABLE resident
    ADD COLUMN moved_in_on       date,
    ADD COLUMN welfare_recipient boolean NOT NULL DEFAULT false;

-- The audit page shows one line per request: the rows one request writes share its
-- transaction (older rows, without it, are a line each). No default on existing rows, so the
-- table is not rewritten.
ALTER TABLE audit_event ADD COLUMN txid bigint;
ALTER TABLE audit_event ALTER COLUMN txid SET DEFAULT txid_current();
