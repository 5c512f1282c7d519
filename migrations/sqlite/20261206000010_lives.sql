-- The life simulation's saved lives (SQLite dialect): one per user. `state` is the engine's
-- versioned JSON (`hearth_life::Life::to_json`); `day` and `status` are copies kept for reads
-- that do not decode it. A life is driven by one gateway at a time: `owner` is that process's
-- id and `lease_until` (Unix milliseconds) when its claim lapses unless renewed; a write names
-- its owner, so a gateway that lost the lease can no longer save over the one that took it.
-- `generation` counts restarts.
CREATE TABLE lives (
    user_id          BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation       INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    status           TEXT NOT NULL CHECK (status IN ('running', 'paused', 'ended')),
    ticks_per_minute INTEGER NOT NULL CHECK (ticks_per_minute BETWEEN 1 AND 5000),
    day              INTEGER NOT NULL CHECK (day >= 0),
    state            TEXT NOT NULL,
    owner            BLOB,
    lease_until      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX lives_owner_idx ON lives (owner) WHERE owner IS NOT NULL;
