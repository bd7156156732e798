-- Registries every layer reads: centres, stations, gateways, devices and residents.
-- Staff accounts, consents and audit arrive with the api (0300-); flags and tasks with clinical (0200-).

CREATE TABLE centre (
    id            text PRIMARY KEY,                 -- 'yaksu'
    name          text NOT NULL,                    -- '약수동 U-건강센터'
    neighbourhood text NOT NULL                     -- '약수동'
);

CREATE TABLE gateway (
    id            text PRIMARY KEY,                 -- 'yaksu-gw-1'
    centre_id     text REFERENCES centre (id),
    mode          text NOT NULL DEFAULT 'station' CHECK (mode IN ('station', 'visit')),
    description   text,
    last_seen_at  timestamptz
);

CREATE TABLE station (
    id            text PRIMARY KEY,                 -- 'yaksu-station-1'
    centre_id     text NOT NULL REFERENCES centre (id),
    gateway_id    text REFERENCES gateway (id),
    name          text NOT NULL
);

-- Residents are identified by a health-centre-scoped id, never the resident registration number.
CREATE TABLE resident (
    id            text PRIMARY KEY,                 -- 'R0001234'
    card_number   text UNIQUE,                      -- centre card / QR the kiosk reads
    display_name  text NOT NULL,                    -- synthetic in demo and tests
    neighbourhood text NOT NULL,                    -- '약수동'
    birth_date    date,
    sex           text CHECK (sex IN ('M', 'F')),
    height_cm     numeric(5, 1),
    profile       jsonb NOT NULL DEFAULT '{}'::jsonb, -- diagnoses, medications, older_adult_health, ...
    nurse_id      text,                             -- assigned visiting nurse (user id)
    liaison_id    text,                             -- assigned liaison officer (user id)
    rehab         boolean NOT NULL DEFAULT false,   -- attends a rehabilitation room
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resident_neighbourhood ON resident (neighbourhood);
CREATE INDEX resident_nurse ON resident (nurse_id);
CREATE INDEX resident_liaison ON resident (liaison_id);

-- Devices: station devices (shared by many residents) and personal home devices.
CREATE TABLE device (
    id            text PRIMARY KEY,                 -- identity: System ID / serial, else BT address
    address       text,                             -- BLE address (identity address once bonded)
    manufacturer  text,
    model         text,
    serial        text,
    firmware      text,
    kind          text,                             -- devices.model.Kind value
    station_id    text REFERENCES station (id),     -- station device
    owner_id      text REFERENCES resident (id),    -- personal device
    calibration   text CHECK (calibration IN ('plasma', 'whole_blood')),
    battery_pct   smallint,
    last_seen_at  timestamptz,
    resource      jsonb                             -- FHIR Device as served
);

-- Personal multi-user devices: (device, user index) -> resident. A user slot is never a person
-- by itself; only this mapping makes it one.
CREATE TABLE device_user (
    device_id     text NOT NULL REFERENCES device (id),
    user_index    smallint NOT NULL,
    resident_id   text NOT NULL REFERENCES resident (id),
    valid_from    timestamptz NOT NULL DEFAULT now(),
    valid_to      timestamptz,
    PRIMARY KEY (device_id, user_index, valid_from)
);
