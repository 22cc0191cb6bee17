-- A tenant's own authorization policies (Cedar text), validated before they are saved.
-- Without a row the tenant uses Tillit's defaults.
CREATE TABLE tenant_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id),
    policies    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
) STRICT;
