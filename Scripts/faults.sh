#!/usr/bin/env bash
# Fault scenarios end to end (issue: hardening), each under a mixed load from
# portier-load, against portierd with its embedded PostgreSQL (fsync on):
#   1. PostgreSQL stops for a few seconds and comes back;
#   2. kill -9 of portierd and of PostgreSQL's postmaster, then a restart;
#   3. SIGTERM under load.
# Prints what was checked; exits non-zero if anything acknowledged was lost or
# a bound was missed.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portierd portier-load portier
BIN=$PWD/.build/release
STATE=$(mktemp -d /tmp/portier-faults.XXXXXX)
chmod 755 "$STATE"
PG_BIN=$(pg_config --bindir)
DB="host=$STATE/pg port=5432 user=postgres dbname=portier"
PID=
failures=0
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m immediate stop >/dev/null 2>&1 || true
  [ "$failures" = 0 ] && [ -z "${KEEP:-}" ] && rm -rf "$STATE" || echo "state kept in $STATE"
}
trap cleanup EXIT
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
check() { if eval "$2"; then echo "  ok: $1"; else echo "  FAILED: $1"; failures=$((failures + 1)); fi; }
start_portierd() {
  "$BIN/portierd" --state-dir "$STATE" --log-level warning --messages-per-recipient-per-hour 1000000 >>"$STATE/portierd.log" 2>&1 & PID=$!
  # Ready when it answers (a killed server's socket file may still be there).
  for _ in $(seq 1 600); do PORTIER_SOCKET="$STATE/portier.sock" "$BIN/portier" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "portierd did not start; its log:" >&2; tail -20 "$STATE/portierd.log" >&2; failures=1; exit 1
}
load() { # seconds, mutation share, acknowledged file, json report
  "$BIN/portier-load" run --socket "$STATE/portier.sock" --mail-socket "$STATE/portier.sock" --manifest "$STATE/manifest.json" \
    --seconds "$1" --mutations "$2" --connections 2 --depth 8 --acknowledged "$3" --json >"$4" 2>/dev/null
}
codes() { python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['errors_by_code']; print(' '.join(sorted({c for op in e.values() for c in op})) or 'none')" "$1"; }
count() { python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['errors_by_code']; print(sum(n for op in e.values() for c, n in op.items() if c == sys.argv[2]))" "$1" "$2"; }
only_expected() { [ -z "$(codes "$1" | tr ' ' '\n' | grep -v -x -e unavailable -e conflict -e rate_limited -e none)" ]; }
requests() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['operations']['all']['count'])" "$1"; }

echo "== setup: portierd with its embedded PostgreSQL; 200 environments seeded"
start_portierd
sleep 1
"$BIN/portier-load" seed --database-url "$DB" --environments 200 --users 20000 --organisations 2000 --memberships 60000 \
  --manifest "$STATE/manifest.json" | tail -1

echo "== 1. PostgreSQL stops under load for 3 s, then returns"
load 14 0.2 "$STATE/ack1" "$STATE/run1.json" & LOAD=$!
sleep 4
as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w stop >/dev/null
sleep 3
as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pg/server.log" -w \
  -o "-c listen_addresses='' -k $STATE/pg -p 5432 -c unix_socket_permissions=0700" start >/dev/null
wait $LOAD
check "portierd survived the outage" "kill -0 $PID"
echo "  errors during the run: $(codes "$STATE/run1.json") (unavailable: $(count "$STATE/run1.json" unavailable)); $(requests "$STATE/run1.json") requests in all"
# A flow cut by the outage leaves its partnership or membership behind: doing it
# again is a conflict (one partnership per pair, one membership per user).
check "the only errors were unavailable (and conflicts left by cut flows, the invitation rate limit)" "only_expected $STATE/run1.json"
load 3 0.3 "$STATE/ack1b" "$STATE/run1b.json"
echo "  a new run after PostgreSQL returned: $(requests "$STATE/run1b.json") requests, errors: $(codes "$STATE/run1b.json")"
check "after PostgreSQL returned, a new run has no unavailable errors" "[ \$(count $STATE/run1b.json unavailable) = 0 ] && only_expected $STATE/run1b.json"
"$BIN/portier-load" verify --database-url "$DB" --acknowledged "$STATE/ack1" | sed 's/^/  /'
check "every mutation acknowledged around the outage is committed" "$BIN/portier-load verify --database-url '$DB' --acknowledged $STATE/ack1 >/dev/null"

echo "== 2. kill -9 of portierd and of PostgreSQL under load, then restart"
load 30 0.2 "$STATE/ack2" "$STATE/run2.json" & LOAD=$!
sleep 6
POSTMASTER=$(head -1 "$STATE/pg/postmaster.pid")
kill -9 "$PID" "$POSTMASTER"
wait "$PID" 2>/dev/null || true
PID=
wait $LOAD || true
echo "  killed with $(wc -l <"$STATE/ack2") mutations acknowledged"
RESTART=$(date +%s.%N)
start_portierd
echo "  portierd and its PostgreSQL back in $(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$RESTART") s (crash recovery included)"
"$BIN/portier-load" verify --database-url "$DB" --acknowledged "$STATE/ack2" | sed 's/^/  /'
check "every acknowledged mutation survived kill -9, with its audit event and outbox message" "$BIN/portier-load verify --database-url '$DB' --acknowledged $STATE/ack2 >/dev/null"
load 3 0.3 "$STATE/ack2b" "$STATE/run2b.json"
echo "  a new run after the restart: $(requests "$STATE/run2b.json") requests, errors: $(codes "$STATE/run2b.json")"
check "after the restart, a new run has no unavailable errors" "[ \$(count $STATE/run2b.json unavailable) = 0 ] && only_expected $STATE/run2b.json"

echo "== 3. SIGTERM under load"
load 30 0.2 "$STATE/ack3" "$STATE/run3.json" & LOAD=$!
sleep 4
T0=$(date +%s.%N)
kill -TERM "$PID"
set +e; wait "$PID"; RC=$?; set -e
PID=
ELAPSED=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$T0")
wait $LOAD || true
echo "  portierd exited with status $RC after $ELAPSED s; the run saw: $(codes "$STATE/run3.json")"
check "SIGTERM: exit status 0" "[ $RC = 0 ]"
check "SIGTERM: stopped within 11 s (grace period 10 s)" "python3 -c 'import sys; sys.exit(0 if $ELAPSED < 11 else 1)'"
start_portierd
check "every mutation acknowledged before SIGTERM is committed" "$BIN/portier-load verify --database-url '$DB' --acknowledged $STATE/ack3 >/dev/null"

echo
if [ $failures = 0 ]; then echo "all fault checks passed"; else echo "$failures fault checks FAILED"; exit 1; fi
