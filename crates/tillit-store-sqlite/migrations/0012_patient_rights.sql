-- The patient's rights (docs/design/patient-rights.md).
--
-- Records whose processing the patient has restricted (GDPR art. 18): read only by the
-- patient or under emergency access, changed by no one, while the row stands. The reason is
-- sealed with the tenant key (it may describe the patient). A change bumps the tenant's
-- access generation, so the very next request decides with it.
CREATE TABLE restricted_records (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    type           TEXT NOT NULL,
    id             TEXT NOT NULL,
    patient_id     TEXT NOT NULL,
    reason         BLOB NOT NULL,
    restricted_by  TEXT NOT NULL,
    restricted_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, type, id)
) STRICT;
CREATE INDEX restricted_records_patient ON restricted_records (tenant_id, patient_id);

CREATE TRIGGER restricted_records_insert_generation AFTER INSERT ON restricted_records
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER restricted_records_update_generation AFTER UPDATE ON restricted_records
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER restricted_records_delete_generation AFTER DELETE ON restricted_records
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

-- The categories a tenant has a legal duty to keep (never erased on a patient's request),
-- as a space-separated list of Tillit category codes. Without a row the platform's
-- defaults apply.
CREATE TABLE retention_rules (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id),
    categories  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
