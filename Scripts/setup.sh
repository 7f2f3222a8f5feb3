#!/usr/bin/env bash
# Installs what Portier needs to build and run, when it is missing.
# As root it uses apt-get; otherwise it only reports what is missing.
set -euo pipefail

need_apt=()
for pkg in libpq-dev libidn2-dev libpsl-dev publicsuffix pkg-config postgresql; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# The server binaries (initdb, pg_ctl, postgres) come with a postgresql-NN package.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then need_apt+=(postgresql); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing packages: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
fi

# PostgreSQL refuses to run as root: the embedded cluster runs as 'postgres'.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift toolchain (6.x) is required and not on PATH" >&2
  exit 1
fi
