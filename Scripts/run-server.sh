#!/usr/bin/env bash
# Builds and runs portierd with its embedded PostgreSQL under ./.portier
# (or --state-dir DIR). Extra arguments go to portierd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release --product portierd
swift build -c release --product portier
echo "portierd: service socket ./.portier/portier.sock; the CLI is .build/release/portier"
exec .build/release/portierd "$@"
