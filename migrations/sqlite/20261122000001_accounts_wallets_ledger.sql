-- Accounts, wallets, provably-fair seeds, game rounds and the ledger (SQLite dialect).
-- The same invariants as the PostgreSQL schema, enforced by the same CHECK constraints.
-- UUIDs are 16-byte BLOBs and timestamps RFC 3339 TEXT, as sqlx encodes them.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
    email         TEXT NOT NULL CHECK (email = lower(email)),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'player' CHECK (role IN ('player', 'admin')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE wallets (
    user_id    BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE fairness_seeds (
    user_id          BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    server_seed      TEXT NOT NULL,
    server_seed_hash TEXT NOT NULL,
    client_seed      TEXT NOT NULL,
    nonce            INTEGER NOT NULL DEFAULT 0 CHECK (nonce >= 0),
    created_at       TEXT NOT NULL
) STRICT;

-- Rounds reference the wallet, not the user: a round's transaction already holds the wallet row
-- locked, so the foreign-key check costs nothing, where a check against users would lock (and
-- write) the user row on every round.
CREATE TABLE game_rounds (
    id               BLOB PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES wallets (user_id) ON DELETE RESTRICT,
    game             TEXT NOT NULL,
    bet              INTEGER NOT NULL CHECK (bet > 0),
    win              INTEGER NOT NULL CHECK (win >= 0),
    status           TEXT NOT NULL DEFAULT 'settled',
    detail           TEXT NOT NULL DEFAULT '{}',
    server_seed_hash TEXT NOT NULL,
    client_seed      TEXT NOT NULL,
    nonce            INTEGER NOT NULL,
    created_at       TEXT NOT NULL
) STRICT;
CREATE INDEX game_rounds_user_created_idx ON game_rounds (user_id, created_at DESC);

CREATE TABLE ledger_entries (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        BLOB NOT NULL REFERENCES wallets (user_id) ON DELETE RESTRICT,
    kind           TEXT NOT NULL
                   CHECK (kind IN ('bet', 'win', 'deposit', 'bonus', 'adjustment', 'refund')),
    amount         INTEGER NOT NULL,
    balance_before INTEGER NOT NULL CHECK (balance_before >= 0),
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    game           TEXT,
    round_id       BLOB REFERENCES game_rounds (id) ON DELETE RESTRICT,
    description    TEXT NOT NULL DEFAULT '',
    metadata       TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL DEFAULT 'settled',
    created_at     TEXT NOT NULL,
    CONSTRAINT ledger_entries_arithmetic CHECK (balance_after = balance_before + amount)
) STRICT;
CREATE INDEX ledger_entries_user_id_idx ON ledger_entries (user_id, id DESC);
-- Reconciliation and balance history read one user's entries through the index above;
-- nothing looks entries up by round, so no index on round_id (each one costs every insert).
