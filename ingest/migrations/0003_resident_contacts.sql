-- Resident contact details (issue 11.4): what a nurse needs to act on an alert. Served as FHIR
-- Patient.telecom, Patient.address (KR Core road-name address) and Patient.contact; shown to
-- staff in scope, and to a liaison officer only for residents who consented (api.store.contacts).
--
-- Phone numbers are Korean national format with dashes ('010-1234-5678', '02-123-4567').
-- Synthetic data uses numbers that cannot reach anyone: '010-0000-xxxx' and '02-0000-xxxx'.

ALTER TABLE resident
    ADD COLUMN mobile_phone   text CHECK (mobile_phone ~ '^0[0-9]{1,2}-[0-9]{3,4}-[0-9]{4}$'),
    ADD COLUMN home_phone     text CHECK (home_phone ~ '^0[0-9]{1,2}-[0-9]{3,4}-[0-9]{4}$'),
    ADD COLUMN address_road   text,             -- 도로명 ('다산로'); the 동 is resident.neighbourhood
    ADD COLUMN address_detail text,             -- building number and unit ('12, 301호')
    ADD COLUMN postal_code    text CHECK (postal_code ~ '^[0-9]{5}$'),
    ADD COLUMN lives_alone    boolean;          -- NULL: not known

-- Emergency contacts and guardians (보호자), in the order staff should call them.
CREATE TABLE resident_contact (
    resident_id   text     NOT NULL REFERENCES resident (id) ON DELETE CASCADE,
    rank          smallint NOT NULL CHECK (rank >= 1),       -- 1 = call first
    name          text     NOT NULL,
    relationship  text     NOT NULL CHECK (relationship IN
                      ('spouse', 'son', 'daughter', 'child', 'sibling', 'grandchild', 'parent',
                       'relative', 'friend', 'neighbour', 'guardian', 'carer', 'other')),
    phone         text     NOT NULL CHECK (phone ~ '^0[0-9]{1,2}-[0-9]{3,4}-[0-9]{4}$'),
    guardian      boolean  NOT NULL DEFAULT false,           -- the resident's guardian (보호자)
    PRIMARY KEY (resident_id, rank)
);
