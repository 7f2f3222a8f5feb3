#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL cluster, then checks
# Protocol/: every example frame against its schema, and a live portierd's real
# frames against the same schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh

source Scripts/pg-throwaway.sh
pg_throwaway_start
LIVE_DIR=$(mktemp -d /tmp/portier-live.XXXXXX)
cleanup() {
  if [ -n "${LIVE_PID:-}" ]; then kill -TERM "$LIVE_PID" 2>/dev/null || true; wait "$LIVE_PID" 2>/dev/null || true; fi
  rm -rf "$LIVE_DIR"
  pg_throwaway_stop
}
trap cleanup EXIT

swift build --build-tests
swift test --skip-build "$@"

python3 Scripts/validate-protocol.py
"$PG_BIN/psql" "$PORTIER_TEST_DATABASE_URL" -qc "CREATE DATABASE protocol_live"
.build/debug/portierd --state-dir "$LIVE_DIR" --database-url "${PORTIER_TEST_DATABASE_URL/dbname=postgres/dbname=protocol_live}" \
  --log-level warning &
LIVE_PID=$!
for _ in $(seq 1 100); do [ -S "$LIVE_DIR/portier.sock" ] && break; sleep 0.1; done
python3 Scripts/validate-protocol.py --live "$LIVE_DIR/portier.sock"
