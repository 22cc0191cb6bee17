-- Access rules: everything the record system knows that a decision needs about a caller and a
-- patient, in one table so one query loads it per request. Care relationships (moved here
-- from care_relationships), patient blocks (sperring), the tenant's individual grants and
-- exclusions, and relatives' consents. Rows come from the admin CLI (source 'admin') or are
-- derived from FHIR resources (source 'CareTeam/<id>', 'EpisodeOfCare/<id>', 'Consent/<id>')
-- in the same transaction that writes the resource version, so they can never disagree.
-- `categories` is a space-separated list of Tillit category codes; '' covers every category.
-- Neither person nor org unit: the rule concerns every staff member (a category block).
CREATE TABLE access_rules (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    kind          TEXT NOT NULL CHECK (kind IN ('care', 'block', 'grant', 'exclusion', 'relative')),
    person_id     TEXT,
    org_unit_id   TEXT,
    patient_id    TEXT NOT NULL,
    categories    TEXT NOT NULL DEFAULT '',
    purpose       TEXT NOT NULL,
    valid_from    INTEGER NOT NULL,
    valid_to      INTEGER,
    decided_by    TEXT,
    source        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    CHECK (person_id IS NULL OR org_unit_id IS NULL),
    CHECK (kind = 'block' OR person_id IS NOT NULL OR org_unit_id IS NOT NULL),
    -- The patient is a person of the tenant or a Patient resource an integration created.
    FOREIGN KEY (tenant_id, person_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, org_unit_id) REFERENCES org_units(tenant_id, id)
) STRICT;
CREATE INDEX access_rules_patient ON access_rules (tenant_id, patient_id);
CREATE INDEX access_rules_person ON access_rules (tenant_id, person_id);
CREATE INDEX access_rules_unit ON access_rules (tenant_id, org_unit_id);
CREATE INDEX access_rules_everyone ON access_rules (tenant_id, kind)
    WHERE person_id IS NULL AND org_unit_id IS NULL;
CREATE INDEX access_rules_source ON access_rules (tenant_id, source);

INSERT INTO access_rules (id, tenant_id, kind, person_id, org_unit_id, patient_id, categories,
                          purpose, valid_from, valid_to, decided_by, source, created_at)
SELECT id, tenant_id, 'care', staff_id, org_unit_id, patient_id, '', purpose, valid_from,
       valid_to, decided_by, 'admin', created_at
FROM care_relationships;
DROP TABLE care_relationships;

-- Role assignments derived from PractitionerRole resources carry their source, so a new
-- version of the resource replaces exactly the assignments it made.
ALTER TABLE role_assignments ADD COLUMN source TEXT NOT NULL DEFAULT 'admin';
CREATE INDEX role_assignments_source ON role_assignments (tenant_id, source);

-- A tenant's settings for access control. Without a row: emergency access lasts 4 hours and
-- overrides a patient's block (the patient sees it in their access log).
CREATE TABLE tenant_settings (
    tenant_id                  TEXT PRIMARY KEY REFERENCES tenants(id),
    emergency_minutes          INTEGER NOT NULL CHECK (emergency_minutes BETWEEN 1 AND 1440),
    emergency_overrides_block  INTEGER NOT NULL CHECK (emergency_overrides_block IN (0, 1)),
    updated_at                 INTEGER NOT NULL
) STRICT;

-- Delegation: a staff member acts on behalf of a colleague (their relationships and roles),
-- optionally for registration only (writing without reading).
CREATE TABLE delegations (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    delegate_id        TEXT NOT NULL,
    on_behalf_of_id    TEXT NOT NULL,
    registration_only  INTEGER NOT NULL CHECK (registration_only IN (0, 1)),
    valid_from         INTEGER NOT NULL,
    valid_to           INTEGER,
    created_at         INTEGER NOT NULL,
    CHECK (delegate_id <> on_behalf_of_id),
    FOREIGN KEY (tenant_id, delegate_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, on_behalf_of_id) REFERENCES persons(tenant_id, id)
) STRICT;
CREATE INDEX delegations_delegate ON delegations (tenant_id, delegate_id);

-- Records a clinician has withheld from the patient (and relatives) under the law, with a
-- reason (sealed with the tenant key: it may describe the patient). Removing the row releases.
CREATE TABLE withheld_records (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    reason       BLOB NOT NULL,
    withheld_by  TEXT NOT NULL,
    withheld_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, type, id)
) STRICT;
CREATE INDEX withheld_records_patient ON withheld_records (tenant_id, patient_id);
