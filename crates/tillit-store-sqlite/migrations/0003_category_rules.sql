-- A tenant's own category rules, tried in `position` order before Tillit's defaults.
CREATE TABLE category_rules (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    position       INTEGER NOT NULL,
    resource_type  TEXT,
    system         TEXT,
    code_prefix    TEXT,
    category       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, position)
) STRICT;
