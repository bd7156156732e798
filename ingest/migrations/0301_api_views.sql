-- What the api's pages need beyond 0300: "last measured" without knowing the code, and home
-- visits (the visiting nurse's record of a visit, for the month's visit plan and the
-- case-meeting report).

-- Last reading per resident, for worklists and the station screen (the (resident, code, time)
-- index of 0001 answers "last of a code", not "last of anything").
CREATE INDEX observation_resident_time ON observation (resident_id, effective_at DESC);

CREATE TABLE home_visit (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id   text NOT NULL REFERENCES resident (id),
    user_id       text NOT NULL REFERENCES app_user (id),
    visited_on    date NOT NULL,
    kind          text NOT NULL DEFAULT 'home' CHECK (kind IN ('home', 'phone', 'centre')),
    note          text,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz                        -- entered in error; kept, not deleted
);
CREATE INDEX home_visit_resident ON home_visit (resident_id, visited_on DESC);
CREATE INDEX home_visit_day ON home_visit (visited_on);
