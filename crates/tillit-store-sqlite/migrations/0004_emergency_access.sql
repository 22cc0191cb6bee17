-- Emergency ("break-the-glass") access: a staff member opens time-limited access to one
-- patient with a stated reason (sealed: it may describe the patient); security officers
-- review every one.
CREATE TABLE emergency_access (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    staff_id      TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    reason        BLOB NOT NULL,
    opened_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    review        TEXT NOT NULL DEFAULT 'open' CHECK (review IN ('open', 'justified', 'deviation')),
    FOREIGN KEY (tenant_id, staff_id) REFERENCES persons(tenant_id, id),
    FOREIGN KEY (tenant_id, patient_id) REFERENCES persons(tenant_id, id)
) STRICT;
CREATE INDEX emergency_access_staff ON emergency_access (tenant_id, staff_id, expires_at);
CREATE INDEX emergency_access_patient ON emergency_access (tenant_id, patient_id);
