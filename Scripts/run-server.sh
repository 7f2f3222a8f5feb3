#!/usr/bin/env bash
# Builds and runs portierd with its embedded PostgreSQL under ./.portier
# (or --state-dir DIR). Extra arguments go to portierd.
# PORTIER_BUILD=debug skips the release build and runs the existing debug build
# (.build/debug, e.g. the test command's; Scripts/check-recipes.py uses it to
# start the README's server).
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib.sh
setup_and_build portierd portier
echo "portierd: service socket ./.portier/portier.sock (or in --state-dir); the CLI is $BUILD_DIR/portier"
exec "$BUILD_DIR/portierd" "$@"
