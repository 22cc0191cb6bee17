-- The audit log (issue 5): each tenant's events in sequence, sealed payloads, the hash of
-- each plain payload (which its Merkle leaf commits to), and plain columns to search by.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY,   -- storage order, across tenants
    tenant_id     TEXT NOT NULL,
    seq           INTEGER NOT NULL,      -- 0, 1, 2, ... per tenant: the leaf index
    at            INTEGER NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    actor_person  TEXT,
    patient_id    TEXT,
    payload_hash  BLOB NOT NULL,
    payload       BLOB,                  -- sealed under the tenant key; NULL once erased
    UNIQUE (tenant_id, seq)
) STRICT;
CREATE INDEX audit_events_patient ON audit_events (tenant_id, patient_id, seq)
    WHERE patient_id IS NOT NULL;
CREATE INDEX audit_events_actor ON audit_events (tenant_id, actor_person, seq)
    WHERE actor_person IS NOT NULL;
CREATE INDEX audit_events_at ON audit_events (tenant_id, at);

-- Append-only; the one change allowed is erasing a payload (its hash stays).
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    WHEN NEW.payload IS NOT NULL
      OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.seq IS NOT OLD.seq
      OR NEW.at IS NOT OLD.at OR NEW.action IS NOT OLD.action OR NEW.outcome IS NOT OLD.outcome
      OR NEW.actor_person IS NOT OLD.actor_person OR NEW.patient_id IS NOT OLD.patient_id
      OR NEW.payload_hash IS NOT OLD.payload_hash
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The tree of each tenant as it grows: its size and compact range (the roots of its
-- perfect subtrees), updated in the transaction of every append.
CREATE TABLE audit_heads (
    tenant_id  TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    frontier   BLOB NOT NULL
) STRICT;

-- Hashes of the perfect subtrees of 256 leaves and more, so proofs need few leaves.
CREATE TABLE audit_nodes (
    tenant_id  TEXT NOT NULL,
    level      INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
) STRICT, WITHOUT ROWID;

-- Signed checkpoints (C2SP tlog-checkpoint signed notes).
CREATE TABLE audit_checkpoints (
    tenant_id  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    note       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, size)
) STRICT;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
