-- Log review (issue 5): alerts raised by the tenant's review rules, how far the rules have
-- read each log, and each tenant's own rule set (JSON; the defaults when absent).
CREATE TABLE audit_alerts (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    rule           TEXT NOT NULL,
    severity       TEXT NOT NULL,
    actor_person   TEXT,
    patient_id     TEXT,
    seqs           TEXT NOT NULL,          -- the events behind it, space-separated
    summary        TEXT NOT NULL,
    raised_at      INTEGER NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'justified', 'deviation')),
    decided_by     TEXT,
    decided_at     INTEGER,
    decision_note  BLOB,                   -- sealed (tenant key)
    breach         INTEGER NOT NULL DEFAULT 0,
    breach_deadline INTEGER                 -- 72 hours after the breach was recognised
) STRICT;
CREATE INDEX audit_alerts_open ON audit_alerts (tenant_id, status, raised_at);

-- An alert is closed once; after that only the breach flag may be set (never unset).
CREATE TRIGGER audit_alerts_closed BEFORE UPDATE ON audit_alerts
    WHEN OLD.status != 'open'
     AND (NEW.status IS NOT OLD.status OR NEW.decided_by IS NOT OLD.decided_by
          OR NEW.decision_note IS NOT OLD.decision_note OR (OLD.breach = 1 AND NEW.breach = 0))
    BEGIN SELECT RAISE(ABORT, 'the alert is already closed'); END;
CREATE TRIGGER audit_alerts_no_delete BEFORE DELETE ON audit_alerts
    BEGIN SELECT RAISE(ABORT, 'alerts are kept'); END;

CREATE TABLE audit_review_cursor (
    tenant_id  TEXT PRIMARY KEY,
    next_seq   INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_review_rules (
    tenant_id   TEXT PRIMARY KEY,
    rules       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
