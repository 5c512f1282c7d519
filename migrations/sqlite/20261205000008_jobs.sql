-- The durable job queue (SQLite dialect). A job is written in the same transaction as the
-- change that causes it (an outbox); claims run under SQLite's single writer. See the
-- PostgreSQL migration for the states. Times are Unix milliseconds, so comparisons are numeric.
CREATE TABLE jobs (
    id             BLOB PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'dead')),
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts   INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at_ms      INTEGER NOT NULL,
    lease_token    BLOB,
    lease_until_ms INTEGER,
    last_error     TEXT,
    trace_context  TEXT,
    created_at_ms  INTEGER NOT NULL,
    CHECK ((state = 'running') = (lease_token IS NOT NULL AND lease_until_ms IS NOT NULL))
) STRICT;
CREATE INDEX jobs_due_idx ON jobs (run_at_ms) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until_ms) WHERE state = 'running';
CREATE INDEX jobs_state_kind_idx ON jobs (state, kind);

CREATE TABLE job_slots (
    schedule TEXT NOT NULL,
    slot_ms  INTEGER NOT NULL,
    job_id   BLOB NOT NULL,
    PRIMARY KEY (schedule, slot_ms)
) STRICT;

-- Outbox messages carry an HTML alternative beside the plain text (both from templates).
ALTER TABLE email_outbox ADD COLUMN html_body TEXT;

-- E-mail verification (see the PostgreSQL migration).
ALTER TABLE users ADD COLUMN email_verified_at TEXT;
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

-- The client addresses each account has logged in from.
CREATE TABLE login_addresses (
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, address)
) STRICT;
