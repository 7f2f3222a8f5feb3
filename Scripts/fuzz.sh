#!/usr/bin/env bash
# libFuzzer on the transport, the JSON parser and request decoding.
#   bash Scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]   (default: 120 s, transport parser requests)
# Or a fixed number of executions: RUNS=10000000 bash Scripts/fuzz.sh; or
# FORK=2 bash Scripts/fuzz.sh 1800 transport (two processes, 30 minutes).
#
#   transport  arbitrary byte streams, split at arbitrary points, through the real
#              ConnectionHandler on an EmbeddedChannel (an OfflineResponder behind
#              it: no database); one reply per complete frame, ids in order,
#              closed only after frame_too_large.
#   parser     the parser with the request caps, inputs up to 1 MiB and libFuzzer's
#              per-input -timeout (1 s), plus 32-fold copies of each input: an
#              input whose parse time grows faster than its size is reported as a
#              timeout.
#   requests   a payload through the envelope, params helpers, domain parsers and
#              the reply encoder.
#
# Builds in its own scratch folder (.build-fuzz, git-ignored) with address
# sanitizer and coverage; starts from the committed seeds in Tests/Fuzz/corpus
# (new interesting inputs go to .build-fuzz/corpus, crashes and timeouts to
# .build-fuzz/artifacts). Prints executions, corpus size and findings; exits
# non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-120}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(transport parser requests)
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
  case $target in
    parser) options=(-max_len=1048576 -timeout=1 -rss_limit_mb=4096) ;;
    transport) options=(-max_len=16384 -timeout=5) ;;
    *) options=(-max_len=4096 -timeout=5) ;;
  esac
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  [ -n "${RUNS:-}" ] && limit=(-runs="$RUNS")
  # FORK=N: N fuzzing processes (libFuzzer's fork mode; it counts time, not runs).
  [ -n "${FORK:-}" ] && limit=(-max_total_time="$SECONDS_PER_TARGET" -fork="$FORK")
  log=.build-fuzz/$target.log
  if [ -n "${RUNS:-}" ]; then echo "== $target ($RUNS runs)"; else echo "== $target ($SECONDS_PER_TARGET s)"; fi
  # No allocation stacks: most of an execution's time went to recording them.
  if PORTIER_FUZZ_TARGET=$target ASAN_OPTIONS=malloc_context_size=0 SWIFT_BACKTRACE=enable=no "$BIN" "$target" "${limit[@]}" "${options[@]}" -print_final_stats=1 \
       -artifact_prefix=.build-fuzz/artifacts/$target- "$corpus" "Tests/Fuzz/corpus/$target" >"$log" 2>&1; then
    echo "no findings"
  else
    status=1
    echo "FINDING: see $log and .build-fuzz/artifacts/"
    grep -E "ERROR|Fatal error|precondition|SUMMARY|timeout" "$log" | head -5 || true
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$log" || true
  echo "corpus: $(ls "$corpus" | wc -l) inputs"
  grep -E "^#[0-9]+.*(DONE|pulse)" "$log" | tail -1 || true
done
exit $status
