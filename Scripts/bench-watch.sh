#!/usr/bin/env bash
# Watchers and checks (issue 17, R-WAT-1): does holding 1,000 watches on one
# instance hurt check latency? On the seeded data of bench-checks (1,000
# environments, 100,000 users), with a steady trickle of changes (user.set_role
# at RATE per second, so every watch gets frames), it alternates rounds without
# and with WATCHERS watches of every environment (8 per connection) and
# measures sequential check latency (p50, p99) in each; then prints the ratios
# and the frames the watchers received. Release builds only.
# Options (environment): WATCHERS (1000), RATE (50 changes/s), ROUNDS (2),
# SECONDS_PER_RUN (15).
set -euo pipefail
cd "$(dirname "$0")/.."
WATCHERS=${WATCHERS:-1000}
RATE=${RATE:-50}
ROUNDS=${ROUNDS:-2}
RUN=${SECONDS_PER_RUN:-15}

source Scripts/lib.sh
setup_and_build portierd portier-bench
BIN=.build/release

source Scripts/pg-throwaway.sh
pg_throwaway_start
WORK=$(mktemp -d /tmp/portier-watch.XXXXXX)
cleanup() {
  for pid in ${TRICKLE_PID:-} ${WATCH_PID:-} ${PORTIERD_PID:-}; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  pg_throwaway_stop
}
trap cleanup EXIT

create_bench_database bench
"$BIN/portierd" --database-url "$DB" --state-dir "$WORK/state" --log-level warning --max-connections 2048 & PORTIERD_PID=$!
wait_for_socket "$WORK/state/portier.sock"
SOCK="$WORK/state/portier.sock"
"$BIN/portier-bench" warm --socket "$SOCK" >/dev/null
"$BIN/portier-bench" latency --socket "$SOCK" --requests 5000 >/dev/null   # warm-up

REQUESTS=$((RUN * 1500))
RESULTS=()
for round in $(seq "$ROUNDS"); do
  for watchers in 0 "$WATCHERS"; do
    echo "round $round: $watchers watchers"
    if [ "$watchers" -gt 0 ]; then
      "$BIN/portier-bench" watchers --socket "$SOCK" --count "$watchers" --seconds $((RUN + 6)) >"$WORK/watchers.json" & WATCH_PID=$!
      sleep 3   # every watch open before the trickle starts
    fi
    "$BIN/portier-bench" mutations --socket "$SOCK" --connections 1 --op user.set_role --rate "$RATE" --seconds $((RUN + 2)) >"$WORK/trickle.json" & TRICKLE_PID=$!
    sleep 1
    CHECK=$("$BIN/portier-bench" latency --socket "$SOCK" --requests "$REQUESTS")
    wait "$TRICKLE_PID"; TRICKLE_PID=
    FRAMES='{"frames": 0, "watches": 0}'
    if [ "$watchers" -gt 0 ]; then wait "$WATCH_PID"; WATCH_PID=; FRAMES=$(cat "$WORK/watchers.json"); fi
    RESULTS+=("$watchers" "$CHECK" "$(cat "$WORK/trickle.json")" "$FRAMES")
  done
done

python3 - "${RESULTS[@]}" <<'PY'
import json, os, platform, sys
args = sys.argv[1:]
rows = [(int(args[i]), json.loads(args[i + 1]), json.loads(args[i + 2]), json.loads(args[i + 3])) for i in range(0, len(args), 4)]
print()
print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, {platform.platform()}")
print()
print("| round | watchers | check p50 | check p99 | changes/s | frames received | frames/s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, (w, check, trickle, frames) in enumerate(rows):
    print(f"| {n // 2 + 1} | {w} | {check['p50_us']:.0f} µs | {check['p99_us']:.0f} µs | {trickle['replies_per_s']:.0f} "
          f"| {frames['frames']:,} | {frames.get('frames_per_s', 0):,.0f} |")
print()
for i in range(0, len(rows), 2):
    base, loaded = rows[i][1], rows[i + 1][1]
    print(f"round {i // 2 + 1}: with {rows[i + 1][0]} watchers, check p50 {loaded['p50_us'] / base['p50_us']:.2f}×, "
          f"p99 {loaded['p99_us'] / base['p99_us']:.2f}× of the round without (target ≤ 1.10×)")
PY
