-- A tenant's access generation: bumped by a trigger in the same transaction as any change to
-- what a decision reads about people (access rules, role assignments, delegations, withheld
-- records, access settings). A server may reuse what it loaded for a caller while the
-- generation is unchanged; a change is therefore seen by the very next request.
CREATE TABLE access_generation (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id),
    generation  INTEGER NOT NULL
) STRICT;

CREATE TRIGGER access_rules_insert_generation AFTER INSERT ON access_rules
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER access_rules_update_generation AFTER UPDATE ON access_rules
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER access_rules_delete_generation AFTER DELETE ON access_rules
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER role_assignments_insert_generation AFTER INSERT ON role_assignments
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER role_assignments_update_generation AFTER UPDATE ON role_assignments
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER role_assignments_delete_generation AFTER DELETE ON role_assignments
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER delegations_insert_generation AFTER INSERT ON delegations
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER delegations_update_generation AFTER UPDATE ON delegations
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER delegations_delete_generation AFTER DELETE ON delegations
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER withheld_records_insert_generation AFTER INSERT ON withheld_records
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER withheld_records_update_generation AFTER UPDATE ON withheld_records
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER withheld_records_delete_generation AFTER DELETE ON withheld_records
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER tenant_settings_insert_generation AFTER INSERT ON tenant_settings
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER tenant_settings_update_generation AFTER UPDATE ON tenant_settings
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER tenant_settings_delete_generation AFTER DELETE ON tenant_settings
BEGIN
    INSERT INTO access_generation (tenant_id, generation) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET generation = generation + 1;
END;
