// Schema v5: the permission event log behind `watch` (R-WAT-1, docs/rules.md §14).
//
// A table of its own, not more columns on `index_changes`: that log records
// which keys to reload (also for changes that grant or take nothing, such as a
// new password hash) and is pruned after an hour; this one records what
// happened to a permission fact, before and after, only when such a fact
// changed, and is kept for the configurable watch retention. Triggers write
// the rows in the change's own transaction; `revision` is NULL until the
// transaction bumps its environment (`Transaction.bumpRevision` stamps it, as
// it stamps `index_changes`), so a reader at revision R that reads
// `revision > R` gets whole transactions, in commit order.
//
// A membership of a partner environment's user is recorded in both
// environments (the organisation's and the user's): a change spanning two
// environments appears in both feeds. Every code path that changes such a
// membership already has both environments in scope and bumps both.
//
// `permission_event_floors` remembers, per environment, the newest revision
// whose events were pruned: a watch resuming from before it gets
// `resync_required`.
let schemaV5 = #"""
CREATE SEQUENCE permission_event_ids;

CREATE TABLE permission_events (
    environment_id bigint NOT NULL,
    event_id bigint NOT NULL DEFAULT nextval('permission_event_ids'),
    revision bigint,
    kind text NOT NULL CHECK (kind IN (
        'user.role_changed', 'user.status_changed', 'user.removed',
        'membership.added', 'membership.accepted', 'membership.role_changed', 'membership.removed',
        'organisation.added', 'organisation.status_changed', 'organisation.removed',
        'partnership.activated', 'partnership.ended')),
    user_environment_id bigint,
    user_id bigint,
    organisation_environment_id bigint,
    organisation_id bigint,
    partnership_environment_id bigint,
    partnership_id bigint,
    partner_environment_id bigint,
    role text,
    status text,
    previous text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, event_id)
);
-- Readers go by (environment, revision) and order a transaction's rows by id.
CREATE INDEX permission_events_by_revision ON permission_events (environment_id, revision, event_id);
CREATE INDEX permission_events_unstamped ON permission_events (environment_id) WHERE revision IS NULL;
-- Pruning goes by age; rows arrive in time order, so a BRIN index is enough.
CREATE INDEX permission_events_by_age ON permission_events USING brin (created_at);

CREATE TABLE permission_event_floors (
    environment_id bigint PRIMARY KEY,
    pruned_through bigint NOT NULL
);

ALTER TABLE permission_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE permission_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON permission_events
    USING (environment_id = ANY (portier_environments()))
    WITH CHECK (environment_id = ANY (portier_environments()));
ALTER TABLE permission_event_floors ENABLE ROW LEVEL SECURITY;
ALTER TABLE permission_event_floors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON permission_event_floors
    USING (environment_id = ANY (portier_environments()))
    WITH CHECK (environment_id = ANY (portier_environments()));
GRANT SELECT, INSERT, UPDATE, DELETE ON permission_events TO portier_app;
GRANT SELECT ON permission_event_floors TO portier_app;
GRANT USAGE, SELECT ON SEQUENCE permission_event_ids TO portier_app;

-- The janitor prunes old events of every environment and records the floors.
CREATE POLICY janitor_prunes ON permission_events TO portier_janitor USING (true);
GRANT SELECT, DELETE ON permission_events TO portier_janitor;
CREATE POLICY janitor_records_floors ON permission_event_floors TO portier_janitor USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE ON permission_event_floors TO portier_janitor;

-- A watch of every environment reads the current revision of each, and their
-- events: a role that may read exactly that, across environments.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portier_watcher') THEN
        CREATE ROLE portier_watcher NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_auth_members m
                   WHERE m.roleid = 'portier_watcher'::regrole AND m.member = 'portier_app'::regrole) THEN
        GRANT portier_watcher TO portier_app;
    END IF;
END
$$;
CREATE POLICY watcher_reads ON environments FOR SELECT TO portier_watcher USING (true);
GRANT SELECT (environment_id, revision) ON environments TO portier_watcher;
CREATE POLICY watcher_reads ON permission_events FOR SELECT TO portier_watcher USING (true);
GRANT SELECT ON permission_events TO portier_watcher;
CREATE POLICY watcher_reads ON permission_event_floors FOR SELECT TO portier_watcher USING (true);
GRANT SELECT ON permission_event_floors TO portier_watcher;
GRANT EXECUTE ON FUNCTION portier_environments() TO portier_watcher;

CREATE FUNCTION portier_record_permission_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id, role, status)
            VALUES (OLD.environment_id, 'user.removed', OLD.environment_id, OLD.user_id, OLD.role, OLD.status);
        ELSE
            IF NEW.role IS DISTINCT FROM OLD.role THEN
                INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id, role, status, previous)
                VALUES (NEW.environment_id, 'user.role_changed', NEW.environment_id, NEW.user_id, NEW.role, NEW.status, OLD.role);
            END IF;
            IF NEW.status IS DISTINCT FROM OLD.status THEN
                INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id, role, status, previous)
                VALUES (NEW.environment_id, 'user.status_changed', NEW.environment_id, NEW.user_id, NEW.role, NEW.status, OLD.status);
            END IF;
        END IF;
    ELSIF TG_TABLE_NAME = 'memberships' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id,
                                           organisation_environment_id, organisation_id, role, status)
            SELECT e, 'membership.added', NEW.user_environment_id, NEW.user_id, NEW.environment_id, NEW.organisation_id,
                   NEW.role, NEW.status
            FROM unnest(ARRAY[NEW.environment_id, NULLIF(NEW.user_environment_id, NEW.environment_id)]) AS e WHERE e IS NOT NULL;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id,
                                           organisation_environment_id, organisation_id, role, status)
            SELECT e, 'membership.removed', OLD.user_environment_id, OLD.user_id, OLD.environment_id, OLD.organisation_id,
                   OLD.role, OLD.status
            FROM unnest(ARRAY[OLD.environment_id, NULLIF(OLD.user_environment_id, OLD.environment_id)]) AS e WHERE e IS NOT NULL;
        ELSE
            IF NEW.status IS DISTINCT FROM OLD.status THEN
                INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id,
                                               organisation_environment_id, organisation_id, role, status, previous)
                SELECT e, CASE WHEN OLD.status = 'pending' AND NEW.status = 'active' THEN 'membership.accepted'
                               ELSE 'membership.added' END,
                       NEW.user_environment_id, NEW.user_id, NEW.environment_id, NEW.organisation_id,
                       NEW.role, NEW.status, OLD.status
                FROM unnest(ARRAY[NEW.environment_id, NULLIF(NEW.user_environment_id, NEW.environment_id)]) AS e WHERE e IS NOT NULL;
            END IF;
            IF NEW.role IS DISTINCT FROM OLD.role THEN
                INSERT INTO permission_events (environment_id, kind, user_environment_id, user_id,
                                               organisation_environment_id, organisation_id, role, status, previous)
                SELECT e, 'membership.role_changed', NEW.user_environment_id, NEW.user_id, NEW.environment_id,
                       NEW.organisation_id, NEW.role, NEW.status, OLD.role
                FROM unnest(ARRAY[NEW.environment_id, NULLIF(NEW.user_environment_id, NEW.environment_id)]) AS e WHERE e IS NOT NULL;
            END IF;
        END IF;
    ELSIF TG_TABLE_NAME = 'organisations' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO permission_events (environment_id, kind, organisation_environment_id, organisation_id, status)
            VALUES (NEW.environment_id, 'organisation.added', NEW.environment_id, NEW.organisation_id, NEW.status);
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO permission_events (environment_id, kind, organisation_environment_id, organisation_id, status)
            VALUES (OLD.environment_id, 'organisation.removed', OLD.environment_id, OLD.organisation_id, OLD.status);
        ELSE
            INSERT INTO permission_events (environment_id, kind, organisation_environment_id, organisation_id, status, previous)
            VALUES (NEW.environment_id, 'organisation.status_changed', NEW.environment_id, NEW.organisation_id,
                    NEW.status, OLD.status);
        END IF;
    ELSIF TG_TABLE_NAME = 'partnerships' THEN
        INSERT INTO permission_events (environment_id, kind, partnership_environment_id, partnership_id,
                                       partner_environment_id, status, previous)
        VALUES (NEW.environment_id, CASE WHEN NEW.status = 'active' THEN 'partnership.activated' ELSE 'partnership.ended' END,
                NEW.proposer_environment_id, NEW.partnership_id, NEW.partner_environment_id, NEW.status, OLD.status);
    END IF;
    RETURN NULL;
END
$$;

-- Only changes of permission facts fire: a new password hash, a renamed
-- organisation or a declined proposal write nothing here.
CREATE TRIGGER users_permission_event AFTER UPDATE OF role, status ON users
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION portier_record_permission_event();
CREATE TRIGGER users_removed_event AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION portier_record_permission_event();
CREATE TRIGGER memberships_permission_event AFTER INSERT OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION portier_record_permission_event();
CREATE TRIGGER memberships_changed_event AFTER UPDATE OF role, status ON memberships
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION portier_record_permission_event();
CREATE TRIGGER organisations_permission_event AFTER INSERT OR DELETE ON organisations
    FOR EACH ROW EXECUTE FUNCTION portier_record_permission_event();
CREATE TRIGGER organisations_changed_event AFTER UPDATE OF status ON organisations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION portier_record_permission_event();
CREATE TRIGGER partnerships_changed_event AFTER UPDATE OF status ON partnerships
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND (NEW.status = 'active' OR OLD.status = 'active'))
    EXECUTE FUNCTION portier_record_permission_event();
"""#
