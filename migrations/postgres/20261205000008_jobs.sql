-- The durable job queue. A job is written in the same transaction as the change that causes
-- it (an outbox); workers claim due jobs with FOR UPDATE SKIP LOCKED under a lease, run them,
-- and delete them when done. A failed job is queued again later (backoff) until it has used
-- `max_attempts`, then kept as `dead` with its last error until an operator retries it.
-- Times are Unix milliseconds on both backends, so SQLite compares numbers, not text.
CREATE TABLE jobs (
    id             UUID PRIMARY KEY,
    kind           TEXT NOT NULL,
    payload        JSONB NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'dead')),
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts   INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at_ms      BIGINT NOT NULL,
    -- Set while running: the claim's token (a stale worker's completion is refused) and when
    -- the lease ends (then any worker may claim the job again).
    lease_token    UUID,
    lease_until_ms BIGINT,
    last_error     TEXT,
    -- The W3C trace context of the request that enqueued the job, as a JSON object.
    trace_context  TEXT,
    created_at_ms  BIGINT NOT NULL,
    CHECK ((state = 'running') = (lease_token IS NOT NULL AND lease_until_ms IS NOT NULL))
);
CREATE INDEX jobs_due_idx ON jobs (run_at_ms) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until_ms) WHERE state = 'running';
CREATE INDEX jobs_state_kind_idx ON jobs (state, kind);

-- One row per slot of a scheduled (cron) job: the first worker to insert it enqueues the job,
-- so N workers run each slot once.
CREATE TABLE job_slots (
    schedule TEXT NOT NULL,
    slot_ms  BIGINT NOT NULL,
    job_id   UUID NOT NULL,
    PRIMARY KEY (schedule, slot_ms)
);

-- Outbox messages carry an HTML alternative beside the plain text (both from templates).
ALTER TABLE email_outbox ADD COLUMN html_body TEXT;

-- E-mail verification: the welcome mail carries a one-time token (only its SHA-256 is kept);
-- using it marks the address verified, if it is still the account's address.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);

-- The client addresses each account has logged in from: a login from one not seen before
-- (when the account has logged in before) queues a login alert.
CREATE TABLE login_addresses (
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, address)
);
