-- AI chat conversations and their messages. A conversation belongs to one user; every read
-- and write names the user, so another user's conversation is as good as missing. Messages
-- are numbered by an identity column, the keyset their pages follow (oldest first). An
-- assistant message records who answered, the tokens it took and what it cost (budget
-- micro-units).
CREATE TABLE ai_conversations (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ai_conversations_user_idx ON ai_conversations (user_id, created_at);

CREATE TABLE ai_messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES ai_conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL CHECK (length(content) > 0),
    provider        TEXT,
    model           TEXT,
    input_tokens    BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost_micros     BIGINT NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ai_messages_conversation_idx ON ai_messages (conversation_id, id);
