#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL cluster, then checks
# that every example frame in Protocol/ validates against its schema.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh

source Scripts/pg-throwaway.sh
pg_throwaway_start
trap pg_throwaway_stop EXIT

swift build --build-tests
swift test --skip-build "$@"
python3 Scripts/validate-protocol.py
