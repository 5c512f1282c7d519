-- Idempotent money movements, revealed seeds, and the indexes the history and stats queries use.

CREATE TABLE idempotency_keys (
    -- The wallet, locked by the transaction that writes the key (see game_rounds).
    user_id     BLOB NOT NULL REFERENCES wallets (user_id) ON DELETE CASCADE,
    key         TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    round_id    BLOB REFERENCES game_rounds (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE revealed_seeds (
    server_seed_hash TEXT PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_seed      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    revealed_at      TEXT NOT NULL
) STRICT;
CREATE INDEX revealed_seeds_user_idx ON revealed_seeds (user_id, revealed_at DESC);

-- SQLite cannot add a CHECK to an existing table; the application writes only these two values
-- and the PostgreSQL schema enforces them.
ALTER TABLE game_rounds ADD COLUMN updated_at TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX game_rounds_one_open_per_game ON game_rounds (user_id, game) WHERE status = 'open';

CREATE INDEX ledger_entries_user_kind_idx ON ledger_entries (user_id, kind, id DESC);
CREATE INDEX ledger_entries_user_game_idx ON ledger_entries (user_id, game, id DESC) WHERE game IS NOT NULL;
CREATE INDEX game_rounds_settled_win_idx ON game_rounds (created_at, win DESC) WHERE status = 'settled';
