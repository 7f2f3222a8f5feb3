#!/usr/bin/env bash
# libFuzzer on the frame decoder and on request decoding (issue: hardening).
#   bash Scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]     (default: 120 s, frames requests)
# Or a fixed number of executions: RUNS=10000000 bash Scripts/fuzz.sh.
# Builds in its own scratch folder (.build-fuzz, git-ignored) with address
# sanitizer and coverage; starts from the committed seeds in Tests/Fuzz/corpus
# (new interesting inputs go to .build-fuzz/corpus, crashes to
# .build-fuzz/artifacts). Prints executions and findings; exits non-zero on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-120}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(frames requests)
FUZZER_RT=$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib/swift/clang/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a
[ -f "$FUZZER_RT" ] || { echo "libFuzzer runtime not found at $FUZZER_RT" >&2; exit 1; }

swift build -c release --product portier-fuzz --scratch-path .build-fuzz \
  -Xswiftc -DFUZZING -Xswiftc -sanitize=address \
  -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
  -Xlinker "$FUZZER_RT" -Xlinker -lstdc++
BIN=.build-fuzz/release/portier-fuzz
mkdir -p .build-fuzz/artifacts
status=0
for target in "${TARGETS[@]}"; do
  corpus=.build-fuzz/corpus/$target
  mkdir -p "$corpus"
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  [ -n "${RUNS:-}" ] && limit=(-runs="$RUNS")
  log=.build-fuzz/$target.log
  if [ -n "${RUNS:-}" ]; then echo "== $target ($RUNS runs)"; else echo "== $target ($SECONDS_PER_TARGET s)"; fi
  if SWIFT_BACKTRACE=enable=no "$BIN" "$target" "${limit[@]}" -print_final_stats=1 -max_len=4096 \
       -artifact_prefix=.build-fuzz/artifacts/$target- "$corpus" "Tests/Fuzz/corpus/$target" >"$log" 2>&1; then
    echo "no findings"
  else
    status=1
    echo "FINDING: see $log and .build-fuzz/artifacts/"
    grep -E "ERROR|Fatal error|precondition|SUMMARY" "$log" | head -5 || true
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$log" || true
  grep -E "^#[0-9]+.*(DONE|pulse)" "$log" | tail -1 || true
done
exit $status
