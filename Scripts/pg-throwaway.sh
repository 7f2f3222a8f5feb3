#!/usr/bin/env bash
# Source this: starts a throwaway PostgreSQL cluster (fsync off, Unix socket only)
# in a temporary folder and exports PORTIER_TEST_DATABASE_URL for it.
# Call pg_throwaway_stop to stop it and delete the folder.

pg_bindir() {
  local d
  d=$(pg_config --bindir 2>/dev/null || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_throwaway_start() {
  PG_BIN=$(pg_bindir)
  PG_TMP=$(mktemp -d /tmp/portier-test-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  mkdir -p "$PG_TMP/data"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$PG_TMP"; fi
  pg_as_owner "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log"; return 1; }
  # Tests need no durability; PG_THROWAWAY_DURABLE=1 (the mutation benchmark)
  # keeps PostgreSQL's defaults: fsync, synchronous_commit, full_page_writes on.
  local speed="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${PG_THROWAWAY_DURABLE:-0}" = 1 ] && speed=""
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $PG_TMP -p 5432 $speed -c max_connections=1000 -c shared_buffers=256MB" \
    start >/dev/null || { cat "$PG_TMP/server.log"; return 1; }
  export PORTIER_TEST_DATABASE_URL="host=$PG_TMP port=5432 user=postgres dbname=postgres"
  export PORTIER_TEST_PG_BINDIR="$PG_BIN"
  export PORTIER_TEST_PG_DATA="$PG_TMP/data"
  echo "throwaway PostgreSQL at $PG_TMP"
}

pg_throwaway_stop() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP" ]; then
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
