-- The life simulation's saved lives: one per user. `state` is the engine's versioned JSON
-- (`hearth_life::Life::to_json`); `day` and `status` are copies kept for reads that do not
-- decode it. A life is driven by one gateway at a time: `owner` is that process's id and
-- `lease_until` (Unix milliseconds) when its claim lapses unless renewed; a write names its
-- owner, so a gateway that lost the lease can no longer save over the one that took it.
-- `generation` counts restarts.
CREATE TABLE lives (
    user_id          UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    generation       BIGINT NOT NULL DEFAULT 1 CHECK (generation >= 1),
    status           TEXT NOT NULL CHECK (status IN ('running', 'paused', 'ended')),
    ticks_per_minute BIGINT NOT NULL CHECK (ticks_per_minute BETWEEN 1 AND 5000),
    day              BIGINT NOT NULL CHECK (day >= 0),
    state            TEXT NOT NULL,
    owner            UUID,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
-- The leases a gateway renews in one statement.
CREATE INDEX lives_owner_idx ON lives (owner) WHERE owner IS NOT NULL;
