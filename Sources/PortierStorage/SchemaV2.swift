// Schema v2: the change log that keeps in-memory permission indexes exact.
//
// Triggers record the key of every row the permission index depends on (users,
// organisations, memberships, membership links) when it changes. The row's
// revision is NULL until the transaction bumps its environment's revision
// (Transaction.bumpRevision stamps them), so a reader that has revision R of an
// environment catches up by reading the changes with revision > R, all in one
// snapshot with the current revision. The log is pruned after an hour; an index
// that has not synchronised for longer reloads in full.
let schemaV2 = #"""
CREATE SEQUENCE change_ids;

CREATE TABLE index_changes (
    environment_id bigint NOT NULL,
    change_id bigint NOT NULL DEFAULT nextval('change_ids'),
    revision bigint,
    entity text NOT NULL CHECK (entity IN ('user', 'organisation', 'membership', 'link')),
    key1 bigint NOT NULL,
    key2 bigint,
    key3 bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, change_id)
);
CREATE INDEX index_changes_by_revision ON index_changes (environment_id, revision);
CREATE INDEX index_changes_unstamped ON index_changes (environment_id) WHERE revision IS NULL;
CREATE INDEX index_changes_by_age ON index_changes (created_at);

ALTER TABLE index_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE index_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON index_changes
    USING (environment_id = ANY (portier_environments()))
    WITH CHECK (environment_id = ANY (portier_environments()));
GRANT SELECT, INSERT, UPDATE, DELETE ON index_changes TO portier_app;
GRANT USAGE, SELECT ON SEQUENCE change_ids TO portier_app;

-- Pruning runs across environments: a role that may only delete old log rows.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portier_janitor') THEN
        CREATE ROLE portier_janitor NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_auth_members m
                   WHERE m.roleid = 'portier_janitor'::regrole AND m.member = 'portier_app'::regrole) THEN
        GRANT portier_janitor TO portier_app;
    END IF;
END
$$;
CREATE POLICY janitor_prunes ON index_changes TO portier_janitor USING (true);
GRANT SELECT, DELETE ON index_changes TO portier_janitor;
GRANT EXECUTE ON FUNCTION portier_environments() TO portier_janitor;

CREATE FUNCTION portier_record_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'users' THEN
        INSERT INTO index_changes (environment_id, entity, key1) VALUES (r.environment_id, 'user', r.user_id);
    ELSIF TG_TABLE_NAME = 'organisations' THEN
        INSERT INTO index_changes (environment_id, entity, key1) VALUES (r.environment_id, 'organisation', r.organisation_id);
    ELSIF TG_TABLE_NAME = 'memberships' THEN
        INSERT INTO index_changes (environment_id, entity, key1, key2, key3)
        VALUES (r.environment_id, 'membership', r.organisation_id, r.user_environment_id, r.user_id);
    ELSIF TG_TABLE_NAME = 'membership_links' THEN
        INSERT INTO index_changes (environment_id, entity, key1, key2, key3)
        VALUES (r.environment_id, 'link', r.user_id, r.organisation_environment_id, r.organisation_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION portier_record_change();
CREATE TRIGGER organisations_changed AFTER INSERT OR UPDATE OR DELETE ON organisations
    FOR EACH ROW EXECUTE FUNCTION portier_record_change();
CREATE TRIGGER memberships_changed AFTER INSERT OR UPDATE OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION portier_record_change();
CREATE TRIGGER membership_links_changed AFTER INSERT OR UPDATE OR DELETE ON membership_links
    FOR EACH ROW EXECUTE FUNCTION portier_record_change();
"""#
