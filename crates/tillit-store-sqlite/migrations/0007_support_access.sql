-- Platform operators and support access. Operators are staff of the one operator tenant
-- (the platform's own organisation) with the role 'operator'; they reach a customer tenant's
-- data only through a support grant that one of its admins made, for a limited time. Grants
-- stay on record (revoked, not deleted) so the tenant can always see who had access.
CREATE TABLE operator_tenant (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    tenant_id  TEXT NOT NULL UNIQUE REFERENCES tenants(id)
) STRICT;

CREATE TABLE support_grants (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    operator_user_id  TEXT NOT NULL REFERENCES users(id),
    reason            BLOB NOT NULL,  -- sealed (tenant key): a ticket may describe a patient
    granted_by        TEXT,           -- the tenant admin's person id; NULL from the CLI
    valid_from        INTEGER NOT NULL,
    valid_to          INTEGER NOT NULL,
    revoked_at        INTEGER,
    created_at        INTEGER NOT NULL,
    CHECK (valid_to > valid_from)
) STRICT;
CREATE INDEX support_grants_operator ON support_grants (operator_user_id, tenant_id);
CREATE INDEX support_grants_tenant ON support_grants (tenant_id, valid_from);
