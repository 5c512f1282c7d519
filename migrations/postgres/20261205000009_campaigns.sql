-- Campaigns for game masters: a campaign, its members (the owner is a `gm` member), and four
-- kinds of children (sessions, NPCs, maps, timeline entries). Every row that can be updated
-- carries `version`, incremented on each update: it is the resource's ETag. Deleting a
-- campaign cascades to its members and children; deleting a user cascades to their campaigns.
-- Every list query has an index that serves its filter and its order (keyset pages).
CREATE TABLE campaigns (
    id          UUID PRIMARY KEY,
    owner_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- The per-user limit counts owned campaigns.
CREATE INDEX campaigns_owner_idx ON campaigns (owner_id);

CREATE TABLE campaign_members (
    campaign_id UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('gm', 'player')),
    added_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);
-- A user's campaigns, in id order: `GET /v1/campaigns`.
CREATE INDEX campaign_members_user_idx ON campaign_members (user_id, campaign_id);

CREATE TABLE campaign_sessions (
    id           UUID PRIMARY KEY,
    campaign_id  UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    number       BIGINT NOT NULL CHECK (number >= 1),
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    status       TEXT NOT NULL CHECK (status IN ('planned', 'active', 'completed', 'cancelled')),
    scheduled_at TIMESTAMPTZ,
    notes        TEXT,
    version      BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    -- Also the list index: sessions are listed by number.
    CONSTRAINT campaign_sessions_number_key UNIQUE (campaign_id, number)
);

CREATE TABLE campaign_npcs (
    id          UUID PRIMARY KEY,
    campaign_id UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    tags        JSONB NOT NULL DEFAULT '[]',
    stats       JSONB NOT NULL DEFAULT '{}',
    gm_only     BOOLEAN NOT NULL DEFAULT FALSE,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaign_npcs_list_idx ON campaign_npcs (campaign_id, id);
-- A player's page skips `gm_only` rows without reading them.
CREATE INDEX campaign_npcs_player_idx ON campaign_npcs (campaign_id, id) WHERE NOT gm_only;

CREATE TABLE campaign_maps (
    id          UUID PRIMARY KEY,
    campaign_id UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    image_url   TEXT NOT NULL CHECK (image_url LIKE 'https://%'),
    grid_size   BIGINT NOT NULL CHECK (grid_size >= 1),
    markers     JSONB NOT NULL DEFAULT '[]',
    gm_only     BOOLEAN NOT NULL DEFAULT FALSE,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaign_maps_list_idx ON campaign_maps (campaign_id, id);
CREATE INDEX campaign_maps_player_idx ON campaign_maps (campaign_id, id) WHERE NOT gm_only;

CREATE TABLE campaign_timeline (
    id           UUID PRIMARY KEY,
    campaign_id  UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    in_game_date TEXT NOT NULL CHECK (length(in_game_date) BETWEEN 1 AND 100),
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    body         TEXT,
    position     BIGINT NOT NULL,
    version      BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
-- Entries are listed by position; the id breaks ties, so the order (and a page's cursor) is total.
CREATE INDEX campaign_timeline_list_idx ON campaign_timeline (campaign_id, position, id);
