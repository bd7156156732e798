-- The §0 alert chain and one flag lifecycle (issue 11 items 2, 3a, 5).
--
-- risk_flag.reached_at: a nurse spoke with the resident, so the 60-minute welfare check of a
--   critical flag is not needed (clinical.lifecycle.reached).
-- flag_event.recipients: the people (app_user ids) a notify event reaches, resolved by the
--   runner from the resident's nurse and liaison officer and the alert roster
--   (clinical.alerts.route); the web channel pushes each notify event to exactly these users.
-- follow_up_task.closed_by: who closed a task. A task a person completed ('staff') is never
--   re-opened by the runner; one the runner closed itself ('runner') may re-open (§10.2).
ALTER TABLE risk_flag ADD COLUMN reached_at timestamptz;
ALTER TABLE flag_event ADD COLUMN recipients text[] NOT NULL DEFAULT '{}';
CREATE INDEX flag_event_recipients ON flag_event USING gin (recipients) WHERE kind = 'notify';
ALTER TABLE follow_up_task ADD COLUMN closed_by text CHECK (closed_by IN ('staff', 'runner'));
UPDATE follow_up_task SET closed_by = 'staff' WHERE closed_at IS NOT NULL AND status = 'completed'
    AND business_status NOT IN ('resolved', 'superseded');
UPDATE follow_up_task SET closed_by = 'runner' WHERE closed_at IS NOT NULL AND closed_by IS NULL;
