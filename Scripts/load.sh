#!/usr/bin/env bash
# portier-load end to end (issue: portier-load): seeds 10,000 environments /
# 1,000,000 users / 100,000 organisations / 3,000,000 memberships into a
# throwaway PostgreSQL, starts portierd (release), measures the first check of
# cold environments, loads every environment and reports portierd's resident
# memory, then runs a 60-second mixed load and prints its report.
# Options (environment): LOAD_SECONDS (60), CONNECTIONS (4), DEPTH (16),
# MUTATIONS (0.05), WATCHERS (8 watches of every environment, verified; R-WAT-1),
# PLOT (an SVG path to write; default none), and the shape:
# ENVIRONMENTS, USERS, ORGANISATIONS, MEMBERSHIPS.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portierd portier-load portier
BIN=.build/release

source Scripts/pg-throwaway.sh
pg_throwaway_start
WORK=$(mktemp -d /tmp/portier-load.XXXXXX)
cleanup() {
  [ -n "${PORTIERD_PID:-}" ] && { kill -TERM "$PORTIERD_PID" 2>/dev/null || true; wait "$PORTIERD_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
  pg_throwaway_stop
}
trap cleanup EXIT

DB="${PORTIER_TEST_DATABASE_URL/dbname=postgres/dbname=load}"
"$PG_BIN/psql" "$PORTIER_TEST_DATABASE_URL" -qc "CREATE DATABASE load"
"$BIN/portierd" migrate --database-url "$DB" --log-level warning
echo "== seed"
"$BIN/portier-load" seed --database-url "$DB" --manifest "$WORK/manifest.json" \
  --environments "${ENVIRONMENTS:-10000}" --users "${USERS:-1000000}" \
  --organisations "${ORGANISATIONS:-100000}" --memberships "${MEMBERSHIPS:-3000000}"

# The synthetic traffic repeats messages to the same addresses: caps raised (README, Load).
"$BIN/portierd" --database-url "$DB" --state-dir "$WORK/state" --log-level warning --messages-per-recipient-per-hour 1000000 --invitations-per-hour 1000000 & PORTIERD_PID=$!
wait_for_socket "$WORK/state/portier.sock"
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$PORTIERD_PID/status"; }
echo "== cold start (portierd resident memory before: $(rss))"
"$BIN/portier-load" warm --socket "$WORK/state/portier.sock" --manifest "$WORK/manifest.json"
echo "portierd resident memory with every environment loaded: $(rss)"

echo "== mixed load"
PLOT_ARGS=()
[ -n "${PLOT:-}" ] && PLOT_ARGS=(--plot "$PLOT")
"$BIN/portier-load" run --socket "$WORK/state/portier.sock" --mail-socket "$WORK/state/portier.sock" \
  --manifest "$WORK/manifest.json" --seconds "${LOAD_SECONDS:-60}" --connections "${CONNECTIONS:-4}" \
  --depth "${DEPTH:-16}" --mutations "${MUTATIONS:-0.05}" --watchers "${WATCHERS:-8}" "${PLOT_ARGS[@]}"
echo "portierd resident memory after the run: $(rss)"
# The server's side of the event delay: from hearing of a commit to handing its frames out.
PORTIER_SUPPORT_SOCKET="$WORK/state/support.sock" "$BIN/portier" metrics | grep '^portier_watch_delay_seconds' || true
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
