-- Portier on Citus: run once on the coordinator, after `portierd migrate` has
-- created the schema (PostgreSQL 15, Citus 12; see README.md next to this file).
-- Every tenant table is distributed on environment_id and co-located with
-- `environments`; the small global lookup tables become reference tables.
CREATE EXTENSION IF NOT EXISTS citus;

-- Triggers on distributed tables (the index change log) write only rows of the
-- same environment, i.e. the same shard group: allowed with this setting.
ALTER SYSTEM SET citus.enable_unsafe_triggers = on;
-- Portier scopes row-level security with SET LOCAL app.environments: the
-- setting must reach the transactions Citus opens on the workers.
ALTER SYSTEM SET citus.propagate_set_commands = 'local';
SELECT pg_reload_conf();

BEGIN;
-- Global tables: replicated to every node.
SELECT create_reference_table('domain_claims');
SELECT create_reference_table('email_directory');
SELECT create_reference_table('unactivated_environments');
SELECT create_reference_table('schema_migrations');
SELECT create_reference_table('recipient_messages');

-- Tenant tables: the anchor first, then everything co-located with it.
SELECT create_distributed_table('environments', 'environment_id', shard_count => 32);
SELECT create_distributed_table('users', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('user_emails', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('tokens', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('organisations', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('memberships', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('membership_links', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('partnerships', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('inbox_requests', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('outbox', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('audit_events', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('index_changes', 'environment_id', colocate_with => 'environments');
-- The change feed's history (R-WAT-1). One trigger row is not shard-local: a
-- partner user's membership event is also written into the user's environment
-- (another shard group), inside the same distributed transaction.
SELECT create_distributed_table('permission_events', 'environment_id', colocate_with => 'environments');
SELECT create_distributed_table('permission_event_floors', 'environment_id', colocate_with => 'environments');
COMMIT;

-- The roles (portier_app, portier_mailer, portier_janitor, portier_watcher), their grants and the
-- row-level security policies are propagated to the workers by Citus.
