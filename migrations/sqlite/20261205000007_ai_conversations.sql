-- AI chat conversations and their messages (SQLite dialect). A conversation belongs to one
-- user; every read and write names the user, so another user's conversation is as good as
-- missing. Messages are numbered by the rowid, the keyset their pages follow (oldest first).
-- An assistant message records who answered, the tokens it took and what it cost (budget
-- micro-units).
CREATE TABLE ai_conversations (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX ai_conversations_user_idx ON ai_conversations (user_id, created_at);

CREATE TABLE ai_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id BLOB NOT NULL REFERENCES ai_conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL CHECK (length(content) > 0),
    provider        TEXT,
    model           TEXT,
    input_tokens    INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost_micros     INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    created_at      TEXT NOT NULL
) STRICT;
CREATE INDEX ai_messages_conversation_idx ON ai_messages (conversation_id, id);
