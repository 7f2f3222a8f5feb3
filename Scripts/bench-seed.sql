-- Benchmark data for Scripts/bench-checks.sh, loaded straight into a migrated
-- database (psql -v envs=… -v upe=… -v ope=…). Environment e has users
-- (e-1)*upe+1 … e*upe and organisations (e-1)*ope+1 … e*ope; every user is a
-- member of three organisations of its environment; user 1 of each environment
-- is its administrator, every 10th advanced, every 50th blocked.
-- Triggers are off while loading: the index loads these rows in full anyway.
SET session_replication_role = replica;

INSERT INTO environments (environment_id, name, revision)
SELECT e, 'bench ' || e, 1 FROM generate_series(1, :envs) e;

INSERT INTO users (environment_id, user_id, email, email_norm, name, role, status)
SELECT e, (e - 1) * :upe + k,
       'u' || ((e - 1) * :upe + k) || '@bench' || e || '.test',
       'u' || ((e - 1) * :upe + k) || '@bench' || e || '.test',
       'User ' || k,
       CASE WHEN k = 1 THEN 'administrator' WHEN k % 10 = 0 THEN 'advanced' ELSE 'basic' END,
       CASE WHEN k % 50 = 0 THEN 'blocked' ELSE 'active' END
FROM generate_series(1, :envs) e, generate_series(1, :upe) k;

INSERT INTO email_directory (email_norm, environment_id, user_id, is_primary)
SELECT email_norm, environment_id, user_id, true FROM users;

INSERT INTO organisations (environment_id, organisation_id, name, status)
SELECT e, (e - 1) * :ope + j, 'Organisation ' || j, 'active'
FROM generate_series(1, :envs) e, generate_series(1, :ope) j;

INSERT INTO memberships (environment_id, organisation_id, user_environment_id, user_id, role, status)
SELECT e, (e - 1) * :ope + ((k - 1 + d) % :ope) + 1, e, (e - 1) * :upe + k,
       CASE WHEN d = 0 AND k <= :ope THEN 'administrator' ELSE 'member' END, 'active'
FROM generate_series(1, :envs) e, generate_series(1, :upe) k, generate_series(0, 2) d;

SELECT setval('environment_ids', :envs);
SELECT setval('user_ids', :envs * :upe);
SELECT setval('organisation_ids', :envs * :ope);
SET session_replication_role = origin;
ANALYZE;
