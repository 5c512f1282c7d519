-- Campaigns for game masters (SQLite dialect): the same tables, constraints and indexes as the
-- PostgreSQL schema. UUIDs are 16-byte BLOBs, timestamps RFC 3339 TEXT, JSON TEXT and booleans
-- 0/1, as sqlx encodes them.
CREATE TABLE campaigns (
    id          BLOB PRIMARY KEY NOT NULL,
    owner_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX campaigns_owner_idx ON campaigns (owner_id);

CREATE TABLE campaign_members (
    campaign_id BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('gm', 'player')),
    added_at    TEXT NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
) STRICT;
CREATE INDEX campaign_members_user_idx ON campaign_members (user_id, campaign_id);

CREATE TABLE campaign_sessions (
    id           BLOB PRIMARY KEY NOT NULL,
    campaign_id  BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    number       INTEGER NOT NULL CHECK (number >= 1),
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    status       TEXT NOT NULL CHECK (status IN ('planned', 'active', 'completed', 'cancelled')),
    scheduled_at TEXT,
    notes        TEXT,
    version      INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX campaign_sessions_number_key ON campaign_sessions (campaign_id, number);

CREATE TABLE campaign_npcs (
    id          BLOB PRIMARY KEY NOT NULL,
    campaign_id BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    stats       TEXT NOT NULL DEFAULT '{}',
    gm_only     INTEGER NOT NULL DEFAULT 0 CHECK (gm_only IN (0, 1)),
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX campaign_npcs_list_idx ON campaign_npcs (campaign_id, id);
CREATE INDEX campaign_npcs_player_idx ON campaign_npcs (campaign_id, id) WHERE NOT gm_only;

CREATE TABLE campaign_maps (
    id          BLOB PRIMARY KEY NOT NULL,
    campaign_id BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    image_url   TEXT NOT NULL CHECK (image_url LIKE 'https://%'),
    grid_size   INTEGER NOT NULL CHECK (grid_size >= 1),
    markers     TEXT NOT NULL DEFAULT '[]',
    gm_only     INTEGER NOT NULL DEFAULT 0 CHECK (gm_only IN (0, 1)),
    version     INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX campaign_maps_list_idx ON campaign_maps (campaign_id, id);
CREATE INDEX campaign_maps_player_idx ON campaign_maps (campaign_id, id) WHERE NOT gm_only;

CREATE TABLE campaign_timeline (
    id           BLOB PRIMARY KEY NOT NULL,
    campaign_id  BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    in_game_date TEXT NOT NULL CHECK (length(in_game_date) BETWEEN 1 AND 100),
    title        TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    body         TEXT,
    position     INTEGER NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX campaign_timeline_list_idx ON campaign_timeline (campaign_id, position, id);
