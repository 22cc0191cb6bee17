-- Foundation: tenants, organisation, people, accounts, roles, care relationships, tokens,
-- sessions and security events. Timestamps are unix seconds (UTC).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE org_units (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    id          TEXT NOT NULL,
    parent_id   TEXT,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES org_units(tenant_id, id),
    UNIQUE (tenant_id, parent_id, name)
) STRICT;

CREATE TABLE persons (
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    id                 TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('staff', 'patient', 'relative')),
    display_name       BLOB,  -- sealed (FieldCipher, tenant key)
    professional_id    TEXT,
    sealed_profile     BLOB,
    national_id_index  BLOB,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE UNIQUE INDEX persons_national_id ON persons (tenant_id, national_id_index)
    WHERE national_id_index IS NOT NULL;

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    person_id       TEXT NOT NULL,
    username_index  BLOB NOT NULL UNIQUE,  -- keyed blind index (platform index key)
    username        BLOB NOT NULL,         -- sealed (platform key)
    password_hash   TEXT NOT NULL,         -- Argon2id PHC string
    totp_secret     BLOB,                  -- sealed (tenant key)
    totp_last_step  INTEGER,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, person_id) REFERENCES persons(tenant_id, id)
) STRICT;

CREATE TABLE role_assignments (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    person_id    TEXT NOT NULL,
    role         TEXT NOT NULL,
    org_unit_id  TEXT NOT NULL,
    valid_from   INTEGER NOT NULL,
    valid_to     INTEGER,
    created_at   INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, person_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, org_unit_id) REFERENCES org_units(tenant_id, id)
) STRICT;
CREATE INDEX role_assignments_person ON role_assignments (tenant_id, person_id);

CREATE TABLE care_relationships (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    staff_id        TEXT,
    org_unit_id     TEXT,
    patient_id      TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    valid_from      INTEGER NOT NULL,
    valid_to        INTEGER,
    decided_by      TEXT,
    created_at      INTEGER NOT NULL,
    CHECK ((staff_id IS NULL) <> (org_unit_id IS NULL)),
    FOREIGN KEY (tenant_id, patient_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, staff_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, org_unit_id) REFERENCES org_units(tenant_id, id)
) STRICT;
CREATE INDEX care_relationships_patient ON care_relationships (tenant_id, patient_id);
CREATE INDEX care_relationships_staff ON care_relationships (tenant_id, staff_id);
CREATE INDEX care_relationships_unit ON care_relationships (tenant_id, org_unit_id);

-- A relative's link to a patient. The scope of what the relative may see is decided by the
-- patient's consent (access-control issue); this records who is whose relative.
CREATE TABLE relative_links (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    relative_id   TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    relationship  TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, relative_id, patient_id),
    FOREIGN KEY (tenant_id, relative_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, patient_id) REFERENCES persons(tenant_id, id)
) STRICT;

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    id_hash       BLOB PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    csrf_hash     BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    pending_totp  INTEGER NOT NULL,
    -- A TOTP secret shown on the enrolment page and not yet confirmed (sealed, tenant key).
    totp_enrolment BLOB
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

-- Append-only; the audit log (a later migration) takes these over.
CREATE TABLE security_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    tenant_id    TEXT,
    user_id      TEXT,
    username     BLOB,  -- sealed (tenant key, or platform key when no account matched)
    kind         TEXT NOT NULL,
    outcome_ok   INTEGER NOT NULL,
    detail       TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT
) STRICT;
CREATE INDEX security_events_tenant ON security_events (tenant_id, seq);
CREATE TRIGGER security_events_no_update BEFORE UPDATE ON security_events
    BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
CREATE TRIGGER security_events_no_delete BEFORE DELETE ON security_events
    BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
