-- FHIR resources: every version sealed (AES-256-GCM under the patient's key, or the tenant's
-- key outside a patient compartment), a current-version row for look-ups, and search
-- indexes. Identifying and clinical token values (identifiers, codes, categories, statuses)
-- are stored only as keyed blind indexes; dates and references (pseudonymous ids) are plain
-- so ranges and compartments can be searched. Times are Unix milliseconds.

CREATE TABLE resource_versions (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    type          TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    patient_id    TEXT,
    category      TEXT NOT NULL,
    last_updated  INTEGER NOT NULL,
    deleted       INTEGER NOT NULL,
    key_scope     TEXT NOT NULL CHECK (key_scope IN ('patient', 'tenant')),
    body          BLOB,
    PRIMARY KEY (tenant_id, type, id, version)
) STRICT;
CREATE INDEX resource_versions_history ON resource_versions (tenant_id, type, last_updated);

CREATE TABLE resources (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    type          TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    patient_id    TEXT,
    category      TEXT NOT NULL,
    last_updated  INTEGER NOT NULL,
    deleted       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, type, id)
) STRICT;
CREATE INDEX resources_patient ON resources (tenant_id, patient_id, type);
CREATE INDEX resources_updated ON resources (tenant_id, type, last_updated);

CREATE TABLE search_tokens (
    tenant_id  TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    param      TEXT NOT NULL,
    full_hash  BLOB NOT NULL,  -- HMAC of "system|code"
    code_hash  BLOB NOT NULL   -- HMAC of "code" (matches any system)
) STRICT;
CREATE INDEX search_tokens_full ON search_tokens (tenant_id, type, param, full_hash, id);
CREATE INDEX search_tokens_code ON search_tokens (tenant_id, type, param, code_hash, id);
CREATE INDEX search_tokens_owner ON search_tokens (tenant_id, type, id, param);

CREATE TABLE search_dates (
    tenant_id  TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    param      TEXT NOT NULL,
    low        INTEGER NOT NULL,
    high       INTEGER NOT NULL
) STRICT;
CREATE INDEX search_dates_low ON search_dates (tenant_id, type, param, low);
CREATE INDEX search_dates_owner ON search_dates (tenant_id, type, id, param);

CREATE TABLE search_refs (
    tenant_id    TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    param        TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL
) STRICT;
CREATE INDEX search_refs_target ON search_refs (tenant_id, type, param, target_type, target_id, id);
CREATE INDEX search_refs_owner ON search_refs (tenant_id, type, id, param);
