#!/usr/bin/env bash
# Hostile frames and the event loop (issue: hostile bytes). Prints, release build:
#   1. decode time of the worst request shapes at the 1 MiB frame limit (wide
#      objects, empty objects, \u escapes, one long number, many numbers,
#      maximum nesting) against a plain frame of strings of the same size
#      (target: at most 3× the plain frame), with what each is answered;
#   2. ping round trips on one event loop, quiet and while another connection
#      of the same loop sends each shape back to back (target: a few ms at most).
# No database: the real ConnectionHandler with an OfflineResponder behind it.
# Options (environment): PING_SECONDS (default 3 per shape), REPETITIONS (40).
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portier-bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
.build/release/portier-bench parse --ping-seconds "${PING_SECONDS:-3}" --repetitions "${REPETITIONS:-40}"
