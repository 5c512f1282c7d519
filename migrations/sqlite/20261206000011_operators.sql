-- Operators (issue #25): banned accounts, the append-only admin audit trail, and the record of
-- reconciliation runs that the admin figures show (SQLite dialect).

-- A banned account: set by an operator with a reason, cleared by an unban. Login refuses it
-- (after the password check); its sessions were revoked when it was set. SQLite cannot add a
-- table CHECK by ALTER, so the pair is kept together by the one statement that writes it.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
ALTER TABLE users ADD COLUMN disabled_reason TEXT;

-- Every admin request, allowed or refused. No foreign keys: a row must outlive (and never block)
-- the accounts it names. Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE admin_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    actor_id       BLOB,
    action         TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target_user_id BLOB,
    reason         TEXT CHECK (reason IS NULL OR length(reason) <= 500),
    client_ip      TEXT,
    request_id     TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('done', 'refused')),
    refusal        TEXT,
    detail         TEXT NOT NULL DEFAULT '{}',
    CHECK ((outcome = 'refused') = (refusal IS NOT NULL))
) STRICT;
CREATE INDEX admin_audit_target_idx ON admin_audit (target_user_id, id DESC)
    WHERE target_user_id IS NOT NULL;

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only: UPDATE refused');
END;
CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only: DELETE refused');
END;

CREATE TABLE reconciliation_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    finished_at TEXT NOT NULL,
    wallets     INTEGER NOT NULL CHECK (wallets >= 0),
    mismatches  INTEGER NOT NULL CHECK (mismatches >= 0)
) STRICT;
