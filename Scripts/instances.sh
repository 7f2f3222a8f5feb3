#!/usr/bin/env bash
# Three portierd instances on one database (issue: running it for real): seeds
# 1,000 environments, starts three instances (release), and runs portier-load
# across them: flows mutate on one instance and verify with the reply's token on
# the next (read-your-writes, R-PRM-5), and measure how long the next instance
# takes to see a membership without a token (the `convergence` row).
# Watchers (WATCHERS, default 6, spread over the instances) verify that every
# change reached every watch, whichever instance made it (R-WAT-1), and give
# the event delay across instances.
# Options (environment): LOAD_SECONDS (30), MUTATIONS (0.05), WATCHERS (6).
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portierd portier-load
BIN=.build/release

source Scripts/pg-throwaway.sh
pg_throwaway_start
WORK=$(mktemp -d /tmp/portier-instances.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  pg_throwaway_stop
}
trap cleanup EXIT

DB="${PORTIER_TEST_DATABASE_URL/dbname=postgres/dbname=instances}"
"$PG_BIN/psql" "$PORTIER_TEST_DATABASE_URL" -qc "CREATE DATABASE instances"
"$BIN/portierd" migrate --database-url "$DB" --log-level warning
"$BIN/portier-load" seed --database-url "$DB" --environments 1000 --users 100000 --organisations 10000 --memberships 300000 \
  --manifest "$WORK/manifest.json" | tail -1
SOCKETS=()
for name in a b c; do
  "$BIN/portierd" --database-url "$DB" --state-dir "$WORK/$name" --log-level warning --pool-size 4 --messages-per-recipient-per-hour 1000000 --invitations-per-hour 1000000 & PIDS+=($!)
  SOCKETS+=(--socket "$WORK/$name/portier.sock")
done
for name in a b c; do wait_for_socket "$WORK/$name/portier.sock"; done
echo "three instances: ${PIDS[*]}"
"$BIN/portier-load" run "${SOCKETS[@]}" --mail-socket "$WORK/a/portier.sock" --manifest "$WORK/manifest.json" \
  --seconds "${LOAD_SECONDS:-30}" --connections 3 --depth 8 --mutations "${MUTATIONS:-0.05}" --watchers "${WATCHERS:-6}" --strict
echo "Machine: $(nproc) cores, $(uname -sr)"
