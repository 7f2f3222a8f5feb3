#!/usr/bin/env bash
# Permission checks at the speed of the socket (issue: fast checks). Runs, side
# by side on the same data (1,000 environments, 100,000 users, 10,000
# organisations, 300,000 memberships):
#   1. the floor: a minimal NIO echo server answering frames of the same size,
#   2. portierd `check`: sequential latency and pipelined throughput,
#   3. the same question asked of PostgreSQL with pgbench (prepared, same clients),
#   4. portierd `check.bulk` of 100 items (decisions per second),
# and prints the ratios against the targets. Release builds only.
# Options (environment): SECONDS_PER_RUN (default 5), CONNECTIONS (default: one
# per core, as many as pgbench gets), DEPTH (64 requests in flight per connection).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-5}
CONNECTIONS=${CONNECTIONS:-$(nproc)}
DEPTH=${DEPTH:-64}

source Scripts/lib.sh
setup_and_build portierd portier-bench
BIN=.build/release

source Scripts/pg-throwaway.sh
pg_throwaway_start
WORK=$(mktemp -d /tmp/portier-bench.XXXXXX)
cleanup() {
  for pid in ${ECHO_PID:-} ${PORTIERD_PID:-}; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  pg_throwaway_stop
}
trap cleanup EXIT

create_bench_database bench

json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "floor: echo server"
"$BIN/portier-bench" echo --socket "$WORK/echo.sock" --reply-bytes 90 >/dev/null & ECHO_PID=$!
wait_for_socket "$WORK/echo.sock"
FLOOR_LAT=$("$BIN/portier-bench" latency --socket "$WORK/echo.sock")
FLOOR_TPUT=$("$BIN/portier-bench" throughput --socket "$WORK/echo.sock" --connections "$CONNECTIONS" --depth "$DEPTH" --seconds "$RUN")
kill -TERM $ECHO_PID; wait $ECHO_PID 2>/dev/null || true; ECHO_PID=

echo "portierd"
"$BIN/portierd" --database-url "$DB" --state-dir "$WORK/state" --log-level warning & PORTIERD_PID=$!
wait_for_socket "$WORK/state/portier.sock"
SOCK="$WORK/state/portier.sock"
# Warm-up: load every environment's index (the cold-load cost is measured by
# portier-load, not here), then run the hot path a little.
"$BIN/portier-bench" warm --socket "$SOCK" >/dev/null
"$BIN/portier-bench" throughput --socket "$SOCK" --connections "$CONNECTIONS" --depth "$DEPTH" --seconds 2 >/dev/null
CHECK_LAT=$("$BIN/portier-bench" latency --socket "$SOCK")
CHECK_TPUT=$("$BIN/portier-bench" throughput --socket "$SOCK" --connections "$CONNECTIONS" --depth "$DEPTH" --seconds "$RUN")
BULK_TPUT=$("$BIN/portier-bench" throughput --socket "$SOCK" --connections "$CONNECTIONS" --depth 4 --seconds "$RUN" --op check.bulk --bulk-size 100)
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$PORTIERD_PID/status)
kill -TERM $PORTIERD_PID; wait $PORTIERD_PID 2>/dev/null || true; PORTIERD_PID=

echo "pgbench"
PGBENCH_OUT=$("$PG_BIN/pgbench" -n -M prepared -f Scripts/bench-check.pgbench -c "$CONNECTIONS" -j 2 -T "$RUN" "$DB" 2>&1)
PG_TPS=$(echo "$PGBENCH_OUT" | awk '/^tps/ {print $3; exit}')

python3 - "$FLOOR_LAT" "$FLOOR_TPUT" "$CHECK_LAT" "$CHECK_TPUT" "$BULK_TPUT" "$PG_TPS" "$RSS_KB" "$CONNECTIONS" "$DEPTH" <<'PY'
import json, sys, platform, os
fl, ft, cl, ct, bt = (json.loads(a) for a in sys.argv[1:6])
pg_tps, rss_kb, conns, depth = float(sys.argv[6]), int(sys.argv[7]), sys.argv[8], sys.argv[9]
def line(name, value, target, ok): print(f"| {name} | {value} | {target} | {'met' if ok else 'NOT met'} |")
print()
print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, {platform.platform()}; {conns} connections, pipeline depth {depth}")
print()
print("| measurement | floor (echo) | portierd check | PostgreSQL (pgbench) |")
print("| --- | --- | --- | --- |")
print(f"| latency p50 | {fl['p50_us']:.0f} µs | {cl['p50_us']:.0f} µs | |")
print(f"| latency p99 | {fl['p99_us']:.0f} µs | {cl['p99_us']:.0f} µs | |")
print(f"| latency p99.9 | {fl['p999_us']:.0f} µs | {cl['p999_us']:.0f} µs | |")
print(f"| throughput | {ft['replies_per_s']:,.0f} /s | {ct['replies_per_s']:,.0f} /s | {pg_tps:,.0f} /s |")
print(f"| check.bulk of 100 | | {bt['decisions_per_s']:,.0f} decisions/s ({bt['replies_per_s']:,.0f} requests/s) | |")
print(f"| portierd resident memory, all 1,000 environments loaded | | {rss_kb / 1024:.0f} MiB | |")
print()
print("| target | measured | wanted | |")
print("| --- | --- | --- | --- |")
r1 = cl['p50_us'] / fl['p50_us']; line("check p50 / floor p50", f"{r1:.2f}×", "≤ 1.5×", r1 <= 1.5)
r2 = cl['p99_us'] / fl['p99_us']; line("check p99 / floor p99", f"{r2:.2f}×", "≤ 2×", r2 <= 2)
r3 = ct['replies_per_s'] / ft['replies_per_s']; line("check throughput / floor", f"{r3:.0%}", "≥ 50 %", r3 >= 0.5)
r4 = ct['replies_per_s'] / pg_tps; line("check throughput / pgbench", f"{r4:.1f}×", "≥ 10×", r4 >= 10)
PY
