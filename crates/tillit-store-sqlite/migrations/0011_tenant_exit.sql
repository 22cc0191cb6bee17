-- Tenant exit (issue 7): a deleted tenant's tombstone, and the one sanctioned removal from
-- the append-only tables. Deleting a tenant removes its audit log, checkpoints, alerts and
-- security events with the rest of its rows, in the transaction that writes its tombstone;
-- for every other tenant (and events without a tenant) the triggers refuse as before.
CREATE TABLE deleted_tenants (
    tenant_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    deleted_at  INTEGER NOT NULL,
    draft       TEXT NOT NULL,   -- the deletion receipt's draft (JSON, unsigned)
    removed     TEXT NOT NULL    -- rows removed per table (JSON object)
) STRICT;
CREATE TRIGGER deleted_tenants_no_update BEFORE UPDATE ON deleted_tenants
    BEGIN SELECT RAISE(ABORT, 'a deleted tenant stays deleted'); END;
CREATE TRIGGER deleted_tenants_no_delete BEFORE DELETE ON deleted_tenants
    BEGIN SELECT RAISE(ABORT, 'a deleted tenant stays deleted'); END;

DROP TRIGGER security_events_no_delete;
CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
    WHEN OLD.tenant_id IS NULL
      OR NOT EXISTS (SELECT 1 FROM deleted_tenants WHERE tenant_id = OLD.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;

DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    WHEN NOT EXISTS (SELECT 1 FROM deleted_tenants WHERE tenant_id = OLD.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

DROP TRIGGER audit_checkpoints_no_delete;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    WHEN NOT EXISTS (SELECT 1 FROM deleted_tenants WHERE tenant_id = OLD.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;

DROP TRIGGER audit_alerts_no_delete;
CREATE TRIGGER audit_alerts_no_delete BEFORE DELETE ON audit_alerts
    WHEN NOT EXISTS (SELECT 1 FROM deleted_tenants WHERE tenant_id = OLD.tenant_id)
    BEGIN SELECT RAISE(ABORT, 'alerts are kept'); END;
