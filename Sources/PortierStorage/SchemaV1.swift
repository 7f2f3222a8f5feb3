// Schema v1: the whole data model of docs/rules.md §1.
//
// Tenant tables carry environment_id first in the primary key and in every
// foreign key, and are under FORCE ROW LEVEL SECURITY: a transaction sees only
// the environments listed in the setting `app.environments` (set per
// transaction). Global tables are small routing lookups (see Schema.globalTables).
let schemaV1 = #"""
-- Roles are cluster-wide: create and grant only what is missing, so that
-- migrating a second database in the same cluster touches no role rows.
-- portier_app is NOINHERIT: it may SET ROLE portier_mailer (outbox operations)
-- but must not inherit that role's policies, which would show every outbox to
-- every request.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portier_app') THEN
        CREATE ROLE portier_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'portier_mailer') THEN
        CREATE ROLE portier_mailer NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT pg_has_role(current_user, 'portier_app', 'MEMBER') THEN
        GRANT portier_app TO CURRENT_USER;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_auth_members m
                   WHERE m.roleid = 'portier_mailer'::regrole AND m.member = 'portier_app'::regrole) THEN
        GRANT portier_mailer TO portier_app;
    END IF;
END
$$;

-- The environments a transaction may see: '{}' when unset, never an error.
CREATE FUNCTION portier_environments() RETURNS bigint[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT COALESCE(NULLIF(current_setting('app.environments', true), '')::bigint[], '{}'::bigint[]) $$;

CREATE SEQUENCE environment_ids;
CREATE SEQUENCE user_ids;
CREATE SEQUENCE token_ids;
CREATE SEQUENCE organisation_ids;
CREATE SEQUENCE partnership_ids;
CREATE SEQUENCE request_ids;
CREATE SEQUENCE message_ids;
CREATE SEQUENCE event_ids;

CREATE TABLE environments (
    environment_id bigint PRIMARY KEY DEFAULT nextval('environment_ids'),
    name text NOT NULL,
    revision bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Global: which environment claims a domain (R-ENV-5: at most one).
CREATE TABLE domain_claims (
    domain text PRIMARY KEY,
    environment_id bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'confirmed')),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz
);
CREATE INDEX domain_claims_by_environment ON domain_claims (environment_id);

-- Global: environments nobody has activated yet, with the deadline after which
-- they are deleted and their claim freed (R-ENV-7).
CREATE TABLE unactivated_environments (
    environment_id bigint PRIMARY KEY,
    deadline timestamptz NOT NULL
);
CREATE INDEX unactivated_environments_by_deadline ON unactivated_environments (deadline);

-- Global: every address on the platform, primary or extra (R-ENV-6).
CREATE TABLE email_directory (
    email_norm text PRIMARY KEY,
    environment_id bigint NOT NULL,
    user_id bigint NOT NULL,
    is_primary boolean NOT NULL
);
CREATE INDEX email_directory_by_user ON email_directory (environment_id, user_id);

CREATE TABLE users (
    environment_id bigint NOT NULL REFERENCES environments ON DELETE CASCADE,
    user_id bigint NOT NULL DEFAULT nextval('user_ids'),
    email text NOT NULL,
    email_norm text NOT NULL,
    name text NOT NULL DEFAULT '',
    role text NOT NULL DEFAULT 'basic' CHECK (role IN ('basic', 'advanced', 'administrator')),
    status text NOT NULL DEFAULT 'invited' CHECK (status IN ('invited', 'active', 'blocked')),
    password_hash text,
    created_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    PRIMARY KEY (environment_id, user_id),
    UNIQUE (environment_id, email_norm)
);
CREATE INDEX users_active_administrators ON users (environment_id)
    WHERE role = 'administrator' AND status = 'active';

CREATE TABLE user_emails (
    environment_id bigint NOT NULL,
    user_id bigint NOT NULL,
    email_norm text NOT NULL,
    email text NOT NULL,
    verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, user_id, email_norm),
    FOREIGN KEY (environment_id, user_id) REFERENCES users ON DELETE CASCADE
);

-- Single-use tokens, stored as SHA-256 hashes only (R-USR-2).
CREATE TABLE tokens (
    environment_id bigint NOT NULL,
    token_id bigint NOT NULL DEFAULT nextval('token_ids'),
    user_id bigint NOT NULL,
    purpose text NOT NULL CHECK (purpose IN ('activation', 'email_verification')),
    token_hash bytea NOT NULL,
    email_norm text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz,
    PRIMARY KEY (environment_id, token_id),
    UNIQUE (environment_id, token_hash),
    FOREIGN KEY (environment_id, user_id) REFERENCES users ON DELETE CASCADE
);
CREATE INDEX tokens_by_user ON tokens (environment_id, user_id, purpose);

CREATE TABLE organisations (
    environment_id bigint NOT NULL REFERENCES environments ON DELETE CASCADE,
    organisation_id bigint NOT NULL DEFAULT nextval('organisation_ids'),
    name text NOT NULL,
    kvk_number text CHECK (kvk_number ~ '^[0-9]{8}$'),
    country text,
    status text NOT NULL DEFAULT 'inactive' CHECK (status IN ('inactive', 'active')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, organisation_id)
);

-- A membership lives in the organisation's environment. The user may be of a
-- partner environment (user_environment_id differs); then a mirror row in
-- membership_links lives in the user's environment.
CREATE TABLE memberships (
    environment_id bigint NOT NULL,
    organisation_id bigint NOT NULL,
    user_environment_id bigint NOT NULL,
    user_id bigint NOT NULL,
    role text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'administrator')),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'pending')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, organisation_id, user_environment_id, user_id),
    FOREIGN KEY (environment_id, organisation_id) REFERENCES organisations ON DELETE CASCADE
);
CREATE INDEX memberships_by_user ON memberships (environment_id, user_environment_id, user_id);

CREATE TABLE membership_links (
    environment_id bigint NOT NULL,
    user_id bigint NOT NULL,
    organisation_environment_id bigint NOT NULL,
    organisation_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, user_id, organisation_environment_id, organisation_id),
    FOREIGN KEY (environment_id, user_id) REFERENCES users ON DELETE CASCADE
);

-- A partnership is stored once on each side, with the same partnership_id.
-- The partial unique index makes a second live partnership for a pair impossible
-- (R-PTN-3): both sides' rows are written in one transaction.
CREATE TABLE partnerships (
    environment_id bigint NOT NULL REFERENCES environments ON DELETE CASCADE,
    partnership_id bigint NOT NULL,
    partner_environment_id bigint NOT NULL,
    proposer_environment_id bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'active', 'ended', 'declined')),
    created_at timestamptz NOT NULL DEFAULT now(),
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, partnership_id),
    CHECK (environment_id <> partner_environment_id)
);
CREATE UNIQUE INDEX partnerships_one_live_per_pair ON partnerships (environment_id, partner_environment_id)
    WHERE status IN ('pending', 'active');

-- Requests waiting for an answer, in the addressee's environment.
CREATE TABLE inbox_requests (
    environment_id bigint NOT NULL REFERENCES environments ON DELETE CASCADE,
    request_id bigint NOT NULL DEFAULT nextval('request_ids'),
    kind text NOT NULL CHECK (kind IN ('membership', 'partnership')),
    addressee_user_id bigint,
    organisation_environment_id bigint,
    organisation_id bigint,
    partnership_id bigint,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    answered_by bigint,
    PRIMARY KEY (environment_id, request_id)
);
CREATE INDEX inbox_requests_pending ON inbox_requests (environment_id, addressee_user_id) WHERE status = 'pending';

-- Messages to people (R-OUT-1). The clear token lives only here, and is erased
-- when the mailer acknowledges the message.
CREATE TABLE outbox (
    environment_id bigint NOT NULL REFERENCES environments ON DELETE CASCADE,
    message_id bigint NOT NULL DEFAULT nextval('message_ids'),
    kind text NOT NULL CHECK (kind IN ('activation', 'email_verification', 'membership_request', 'partnership_request', 'domain_join')),
    recipient text NOT NULL,
    token text,
    payload jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    acked_at timestamptz,
    PRIMARY KEY (environment_id, message_id)
);
CREATE INDEX outbox_unacknowledged ON outbox (message_id) WHERE acked_at IS NULL;

-- Who did what to whom (R-AUD-1). actor_user_id is null for the system and for support.
CREATE TABLE audit_events (
    environment_id bigint NOT NULL REFERENCES environments ON DELETE CASCADE,
    event_id bigint NOT NULL DEFAULT nextval('event_ids'),
    at timestamptz NOT NULL DEFAULT now(),
    actor_user_id bigint,
    actor_label text NOT NULL,
    op text NOT NULL,
    target text,
    details jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (environment_id, event_id)
);
CREATE INDEX audit_events_by_op ON audit_events (environment_id, op, at);

-- Row-level security on every tenant table (R-ENV-1).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['environments', 'users', 'user_emails', 'tokens', 'organisations',
                             'memberships', 'membership_links', 'partnerships', 'inbox_requests',
                             'outbox', 'audit_events']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (environment_id = ANY (portier_environments())) WITH CHECK (environment_id = ANY (portier_environments()))', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO portier_app', t);
    END LOOP;
END
$$;

-- The mailer reads and acknowledges every environment's outbox, and nothing else.
CREATE POLICY mailer_reads_all ON outbox TO portier_mailer USING (true) WITH CHECK (true);
GRANT SELECT, UPDATE ON outbox TO portier_mailer;

GRANT SELECT, INSERT, UPDATE, DELETE ON domain_claims, email_directory, unactivated_environments TO portier_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO portier_app;
GRANT EXECUTE ON FUNCTION portier_environments() TO portier_app, portier_mailer;
"""#
