-- Attempt throttles (issue 13.2, 13.3): one row per (kind, key). Keys are SHA-256 digests of a
-- client address ('login-source') or a station id ('station-card'), so no address is stored in
-- the clear. A row is locked while an attempt is admitted, so parallel attempts are counted
-- one after another: 30 at once against a limit of 5 get 5 evaluations.
CREATE TABLE throttle (
    kind          text        NOT NULL CHECK (kind IN ('login-source', 'station-card')),
    key_digest    bytea       NOT NULL,
    label         text,                                 -- shown to staff (a station id), or NULL
    failures      integer     NOT NULL DEFAULT 0,       -- admitted attempts not yet succeeded
    refused       integer     NOT NULL DEFAULT 0,       -- attempts refused while blocked
    window_start  timestamptz NOT NULL DEFAULT now(),
    blocked_until timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key_digest)
);

-- The per-name lockout it replaces let anyone lock every nurse out (n01...n12 are guessable).
DROP TABLE login_attempt;
