#!/usr/bin/env bash
# Builds and runs portierd with its embedded PostgreSQL under ./.portier
# (or --state-dir DIR). Extra arguments go to portierd.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portierd portier
echo "portierd: service socket ./.portier/portier.sock; the CLI is .build/release/portier"
exec .build/release/portierd "$@"
