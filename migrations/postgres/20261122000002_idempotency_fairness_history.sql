-- Idempotent money movements, revealed seeds, and the indexes the history and stats queries use.

-- One row per (user, Idempotency-Key), written in the same transaction as the effect it guards,
-- so a key can never exist without its effect or the reverse.
CREATE TABLE idempotency_keys (
    -- The wallet, locked by the transaction that writes the key (see game_rounds).
    user_id     UUID NOT NULL REFERENCES wallets (user_id) ON DELETE CASCADE,
    key         TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint TEXT NOT NULL,
    -- The response of the first request, replayed verbatim for a retry.
    response    JSONB NOT NULL,
    round_id    UUID REFERENCES game_rounds (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Server seeds retired by rotation; the round's server_seed_hash finds its seed here.
CREATE TABLE revealed_seeds (
    server_seed_hash TEXT PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_seed      TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    revealed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX revealed_seeds_user_idx ON revealed_seeds (user_id, revealed_at DESC);

-- Game rounds can now stay open between requests (blackjack); at most one open hand per game.
ALTER TABLE game_rounds ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE game_rounds ADD CONSTRAINT game_rounds_status_check CHECK (status IN ('open', 'settled'));
CREATE UNIQUE INDEX game_rounds_one_open_per_game ON game_rounds (user_id, game) WHERE status = 'open';

-- History filters: one user's entries of one kind or one game, newest first.
CREATE INDEX ledger_entries_user_kind_idx ON ledger_entries (user_id, kind, id DESC);
CREATE INDEX ledger_entries_user_game_idx ON ledger_entries (user_id, game, id DESC) WHERE game IS NOT NULL;
-- Leaderboards: biggest wins in a period.
CREATE INDEX game_rounds_settled_win_idx ON game_rounds (created_at, win DESC) WHERE status = 'settled';
