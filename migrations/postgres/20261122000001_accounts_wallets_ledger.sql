-- Accounts, wallets, provably-fair seeds, game rounds and the ledger.
-- Invariants the database itself enforces (the application relies on them, tests probe them):
--   * a wallet balance is never negative;
--   * every ledger entry satisfies balance_after = balance_before + amount and is never negative;
--   * a ledger entry's round, when present, exists.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
    email         TEXT NOT NULL CHECK (email = lower(email)),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'player' CHECK (role IN ('player', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Usernames are unique regardless of case; login looks them up the same way.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE wallets (
    user_id    UUID PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    balance    BIGINT NOT NULL CHECK (balance >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The current server seed per user. The seed stays secret until rotated; its SHA-256 is shown.
CREATE TABLE fairness_seeds (
    user_id          UUID PRIMARY KEY REFERENCES users (id) ON DELETE RESTRICT,
    server_seed      TEXT NOT NULL,
    server_seed_hash TEXT NOT NULL,
    client_seed      TEXT NOT NULL,
    nonce            BIGINT NOT NULL DEFAULT 0 CHECK (nonce >= 0),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Rounds reference the wallet, not the user: a round's transaction already holds the wallet row
-- locked, so the foreign-key check costs nothing, where a check against users would lock (and
-- write) the user row on every round.
CREATE TABLE game_rounds (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES wallets (user_id) ON DELETE RESTRICT,
    game             TEXT NOT NULL,
    bet              BIGINT NOT NULL CHECK (bet > 0),
    win              BIGINT NOT NULL CHECK (win >= 0),
    status           TEXT NOT NULL DEFAULT 'settled',
    detail           JSONB NOT NULL DEFAULT '{}',
    server_seed_hash TEXT NOT NULL,
    client_seed      TEXT NOT NULL,
    nonce            BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX game_rounds_user_created_idx ON game_rounds (user_id, created_at DESC);

CREATE TABLE ledger_entries (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES wallets (user_id) ON DELETE RESTRICT,
    kind           TEXT NOT NULL
                   CHECK (kind IN ('bet', 'win', 'deposit', 'bonus', 'adjustment', 'refund')),
    amount         BIGINT NOT NULL,
    balance_before BIGINT NOT NULL CHECK (balance_before >= 0),
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    game           TEXT,
    round_id       UUID REFERENCES game_rounds (id) ON DELETE RESTRICT,
    description    TEXT NOT NULL DEFAULT '',
    metadata       JSONB NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL DEFAULT 'settled',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ledger_entries_arithmetic CHECK (balance_after = balance_before + amount)
);
-- Transaction history: one user's entries, newest first, keyset-paginated by id.
CREATE INDEX ledger_entries_user_id_idx ON ledger_entries (user_id, id DESC);
-- Reconciliation and balance history read one user's entries through the index above;
-- nothing looks entries up by round, so no index on round_id (each one costs every insert).
