#!/usr/bin/env bash
# Logins under a hashing flood (R-SEC-2, R-SEC-5, R-USR-4).
# portierd (release, default scrypt N = 2^17) on a throwaway PostgreSQL; one
# real user; then `portier-bench login-flood`: that user's login latency on a
# quiet server, then (1) right after bursts in which FLOOD_CONNECTIONS (default
# 3) other connections each pipeline FLOOD_DEPTH (128) bogus activations
# (made-up tokens) and logins of unknown addresses: 384 at once, as in the
# finding; (2) during a sustained flood, each flooding connection refilling its
# 128 in flight as fast as the replies come. Target: p99 ≤ max(1.5 s, 5 × quiet
# p99). Also prints the cost of one hash (portier-bench password-cost).
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portierd portier portier-bench
BIN=.build/release
source Scripts/pg-throwaway.sh
pg_throwaway_start
WORK=$(mktemp -d /tmp/portier-login.XXXXXX)
cleanup() { [ -n "${PID:-}" ] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; rm -rf "$WORK"; pg_throwaway_stop; }
trap cleanup EXIT
DB="${PORTIER_TEST_DATABASE_URL/dbname=postgres/dbname=login}"
"$PG_BIN/psql" "$PORTIER_TEST_DATABASE_URL" -qc "CREATE DATABASE login"
"$BIN/portierd" --database-url "$DB" --state-dir "$WORK" --log-level error & PID=$!
wait_for_socket "$WORK/portier.sock"
export PORTIER_SOCKET="$WORK/portier.sock"
"$BIN/portier" signup user@login.test >/dev/null
TOKEN=$("$BIN/portier" outbox list --json | python3 -c 'import json,sys; print([m["token"] for m in json.load(sys.stdin)["messages"] if m["to"]=="user@login.test"][-1])')
printf '%s\n' 'correct horse battery' | "$BIN/portier" activate "$TOKEN" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN/portier-bench" password-cost --hashes 5
"$BIN/portier-bench" login-flood --socket "$WORK/portier.sock" --email user@login.test --password 'correct horse battery' \
  --flood-connections "${FLOOD_CONNECTIONS:-3}" --flood-depth "${FLOOD_DEPTH:-128}"
"$BIN/portier-bench" login-flood --socket "$WORK/portier.sock" --email user@login.test --password 'correct horse battery' \
  --flood-connections "${FLOOD_CONNECTIONS:-3}" --flood-depth "${FLOOD_DEPTH:-128}" --logins 20 --sustained
# The flood shapes of R-SEC-5: the flooders spread their bogus logins over
# CLIENT_KEYS (12) made-up client keys each, FLOOD_DEPTH_KEYS (96) in flight per
# connection. A real login on a connection of its own (target as above), then
# one through the first flooding connection under a client key of its own
# (the flooding front end's real user): its fair share is one turn per waiting
# connection, and within its connection one turn per waiting key.
"$BIN/portier-bench" login-flood --socket "$WORK/portier.sock" --email user@login.test --password 'correct horse battery' \
  --flood-connections "${FLOOD_CONNECTIONS:-3}" --flood-depth "${FLOOD_DEPTH_KEYS:-96}" --client-keys "${CLIENT_KEYS:-12}" --logins 20 --sustained
"$BIN/portier-bench" login-flood --socket "$WORK/portier.sock" --email user@login.test --password 'correct horse battery' \
  --flood-connections "${FLOOD_CONNECTIONS:-3}" --flood-depth "${FLOOD_DEPTH_KEYS:-96}" --client-keys "${CLIENT_KEYS:-12}" --logins 10 --sustained --through-flood
