-- Operators (issue #25): banned accounts, the append-only admin audit trail, and the record of
-- reconciliation runs that the admin figures show.

-- A banned account: set by an operator with a reason, cleared by an unban. Login refuses it
-- (after the password check); its sessions were revoked when it was set.
ALTER TABLE users
    ADD COLUMN disabled_at     TIMESTAMPTZ,
    ADD COLUMN disabled_reason TEXT,
    ADD CONSTRAINT users_disabled_reason CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL));

-- Every admin request, allowed or refused. No foreign keys: a row must outlive (and never block)
-- the accounts it names. Append-only: the triggers below refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE admin_audit (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    actor_id       UUID,
    action         TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target_user_id UUID,
    reason         TEXT CHECK (reason IS NULL OR length(reason) <= 500),
    client_ip      TEXT,
    request_id     TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('done', 'refused')),
    refusal        TEXT,
    detail         JSONB NOT NULL DEFAULT '{}',
    CHECK ((outcome = 'refused') = (refusal IS NOT NULL))
);
-- The audit page of one account (GET /v1/admin/audit?user_id=), newest first.
CREATE INDEX admin_audit_target_idx ON admin_audit (target_user_id, id DESC)
    WHERE target_user_id IS NOT NULL;

CREATE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER admin_audit_no_update_or_delete BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only();
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_append_only();

-- The outcome of each reconciliation run (the worker's job), newest last; the figures show the
-- last one. `mismatches` counts wallets whose balance is not their ledger sum.
CREATE TABLE reconciliation_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finished_at TIMESTAMPTZ NOT NULL,
    wallets     BIGINT NOT NULL CHECK (wallets >= 0),
    mismatches  BIGINT NOT NULL CHECK (mismatches >= 0)
);
