#!/usr/bin/env bash
# Changes at the speed of PostgreSQL (issue: one transaction per mutation).
# On the seeded data of bench-checks (1,000 environments, 100,000 users,
# 10,000 organisations, 300,000 memberships), side by side at each concurrency:
#   1. portierd `member.set_role` (and `user.set_role`, `member.add` +
#      `member.remove`, `user.invite` + `user.remove`), one request in flight
#      per connection, actor by id, every request a real change;
#   2. the same write as one SQL transaction with pgbench (prepared, same
#      clients): Scripts/bench-mutations.pgbench (and -add-remove, -invite-remove);
# and prints throughput, latency and the ratio. Release builds only.
# Durable by default: PostgreSQL with fsync and synchronous_commit on, for
# portierd and pgbench alike (DURABLE=0: the tests' fsync-off cluster).
# Options (environment): SECONDS_PER_RUN (default 10), CONCURRENCY ("4 8"), DURABLE (1).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-4 8}

source Scripts/lib.sh
setup_and_build portierd portier-bench
BIN=.build/release

source Scripts/pg-throwaway.sh
PG_THROWAWAY_DURABLE=${DURABLE:-1} pg_throwaway_start
WORK=$(mktemp -d /tmp/portier-mutations.XXXXXX)
cleanup() {
  [ -n "${PORTIERD_PID:-}" ] && { kill -TERM "$PORTIERD_PID" 2>/dev/null || true; wait "$PORTIERD_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
  pg_throwaway_stop
}
trap cleanup EXIT

create_bench_database bench

# Invitations are rate limited per environment (R-USR-13); the benchmark makes thousands.
"$BIN/portierd" --database-url "$DB" --state-dir "$WORK/state" --log-level warning --invitations-per-hour 1000000 & PORTIERD_PID=$!
wait_for_socket "$WORK/state/portier.sock"
SOCK="$WORK/state/portier.sock"
"$BIN/portier-bench" warm --socket "$SOCK" >/dev/null
"$BIN/portier-bench" mutations --socket "$SOCK" --connections 4 --seconds 2 >/dev/null   # warm-up

RESULTS=()
for C in $CONCURRENCY; do
  echo "concurrency $C"
  SET_ROLE=$("$BIN/portier-bench" mutations --socket "$SOCK" --connections "$C" --seconds "$RUN" --op member.set_role)
  USER_ROLE=$("$BIN/portier-bench" mutations --socket "$SOCK" --connections "$C" --seconds "$RUN" --op user.set_role)
  ADD_REMOVE=$("$BIN/portier-bench" mutations --socket "$SOCK" --connections "$C" --seconds "$RUN" --op member.add-remove)
  PG=$("$PG_BIN/pgbench" -n -M prepared -f Scripts/bench-mutations.pgbench -c "$C" -j 2 -T "$RUN" "$DB" 2>&1)
  PG_TPS=$(echo "$PG" | awk '/^tps/ {print $3; exit}')
  PG_LAT=$(echo "$PG" | awk '/^latency average/ {print $4; exit}')
  # Two transactions per script run: an add and a remove.
  PG_AR=$("$PG_BIN/pgbench" -n -M prepared -f Scripts/bench-mutations-add-remove.pgbench -c "$C" -j 2 -T "$RUN" "$DB" 2>&1)
  PG_AR_TPS=$(echo "$PG_AR" | awk '/^tps/ {print $3 * 2; exit}')
  INVITE_REMOVE=$("$BIN/portier-bench" mutations --socket "$SOCK" --connections "$C" --seconds "$RUN" --op user.invite-remove)
  PG_IR=$("$PG_BIN/pgbench" -n -M prepared -f Scripts/bench-mutations-invite-remove.pgbench -c "$C" -j 2 -T "$RUN" "$DB" 2>&1)
  PG_IR_TPS=$(echo "$PG_IR" | awk '/^tps/ {print $3 * 2; exit}')
  RESULTS+=("$C" "$SET_ROLE" "$USER_ROLE" "$PG_TPS" "$PG_LAT" "$ADD_REMOVE" "$PG_AR_TPS" "$INVITE_REMOVE" "$PG_IR_TPS")
done

# What the permission event log (R-WAT-1) costs the write itself: the same
# pgbench member.set_role with the event triggers disabled and no stamping.
sed 's/events AS (UPDATE permission_events SET revision = (SELECT revision FROM bumped) WHERE environment_id = :e AND revision IS NULL)/events AS (SELECT 1)/' \
  Scripts/bench-mutations.pgbench >"$WORK/no-event-log.pgbench"
EVENT_TRIGGERS="users:users_permission_event users:users_removed_event memberships:memberships_permission_event
  memberships:memberships_changed_event organisations:organisations_permission_event organisations:organisations_changed_event
  partnerships:partnerships_changed_event"
event_triggers() {
  for t in $EVENT_TRIGGERS; do "$PG_BIN/psql" "$DB" -qc "ALTER TABLE ${t%%:*} $1 TRIGGER ${t#*:}"; done
}
# Alternating pairs (this VM's fsync rate drifts by a third between runs): the median ratio counts.
EVENT_LOG=()
for C in $CONCURRENCY; do
  for pair in 1 2 3; do
    WITH=$("$PG_BIN/pgbench" -n -M prepared -f Scripts/bench-mutations.pgbench -c "$C" -j 2 -T 6 "$DB" 2>&1 | awk '/^tps/ {print $3; exit}')
    event_triggers DISABLE
    WITHOUT=$("$PG_BIN/pgbench" -n -M prepared -f "$WORK/no-event-log.pgbench" -c "$C" -j 2 -T 6 "$DB" 2>&1 | awk '/^tps/ {print $3; exit}')
    event_triggers ENABLE
    EVENT_LOG+=("$C:$WITH:$WITHOUT")
  done
done
export EVENT_LOG_RESULTS="${EVENT_LOG[*]}"

python3 - "${RESULTS[@]}" <<'PY'
import json, sys, os, platform
args = sys.argv[1:]
print()
print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, {platform.platform()}; one request in flight per connection; "
      f"PostgreSQL {'durable (fsync, synchronous_commit on)' if os.environ.get('DURABLE', '1') == '1' else 'with fsync off'}")
print()
print("| connections | portierd member.set_role | portierd user.set_role | the same write in pgbench | member.set_role / pgbench | p50 / pgbench latency | member.add + remove: portierd / pgbench | user.invite + remove: portierd / pgbench |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for i in range(0, len(args), 9):
    c, m, u, tps, lat = args[i], json.loads(args[i + 1]), json.loads(args[i + 2]), float(args[i + 3]), float(args[i + 4])
    ar, ar_tps = json.loads(args[i + 5]), float(args[i + 6])
    ir, ir_tps = json.loads(args[i + 7]), float(args[i + 8])
    ratio = m["replies_per_s"] / tps
    lat_ratio = (m["p50_us"] / 1000) / lat
    print(f"| {c} | {m['replies_per_s']:,.0f}/s, p50 {m['p50_us']/1000:.1f} ms, p99 {m['p99_us']/1000:.1f} ms, {m['errors']} errors "
          f"| {u['replies_per_s']:,.0f}/s, p50 {u['p50_us']/1000:.1f} ms, {u['errors']} errors "
          f"| {tps:,.0f} tps, {lat:.2f} ms | {ratio:.0%} (target ≥ 50 %) | {lat_ratio:.1f}× (target ≤ 2×) "
          f"| {ar['replies_per_s']:,.0f}/s ({ar['errors']} errors) / {ar_tps:,.0f} tps = {ar['replies_per_s'] / ar_tps:.0%} "
          f"| {ir['replies_per_s']:,.0f}/s, p50 {ir['p50_us']/1000:.1f} ms ({ir['errors']} errors) / {ir_tps:,.0f} tps = {ir['replies_per_s'] / ir_tps:.0%} |")
print()
print("The permission event log's cost (pgbench member.set_role with the event triggers and stamping, and without):")
pairs = {}
for entry in os.environ.get("EVENT_LOG_RESULTS", "").split():
    c, with_log, without = entry.split(":")
    pairs.setdefault(c, []).append((float(with_log), float(without)))
for c, runs in pairs.items():
    ratios = sorted(w / n for w, n in runs)
    listed = ", ".join(f"{w:,.0f}/{n:,.0f}" for w, n in runs)
    print(f"  {c} connections: with/without {listed} tps; median {ratios[len(ratios) // 2]:.0%}")
PY
