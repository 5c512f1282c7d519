-- Revocations, the record the revocation caches (Redis or memory) are refilled from. One row
-- per revoked token (`token`, by jti), session (`family`), user (`user`, with the cutoff:
-- tokens minted at or before it are refused) and refresh token already exchanged (`used`, by
-- jti). `expires_at` (epoch seconds) is when nothing the row refuses can be alive; the worker
-- purges rows past it.
CREATE TABLE revocations (
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'family', 'user', 'used')),
    id         UUID NOT NULL,
    cutoff_ms  BIGINT CHECK (cutoff_ms IS NULL OR cutoff_ms >= 0),
    expires_at BIGINT NOT NULL CHECK (expires_at >= 0),
    PRIMARY KEY (kind, id),
    CHECK ((kind = 'user') = (cutoff_ms IS NOT NULL))
);
CREATE INDEX revocations_expires_idx ON revocations (expires_at);
