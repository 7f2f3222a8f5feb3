# Shared by the Scripts/ entry points; source it from the repository root.

# Installs what is missing (as root), then builds the given products (release)
# and sets BUILD_DIR=.build/release. With PORTIER_BUILD=debug it builds nothing
# and sets BUILD_DIR=.build/debug, which must already hold the products (the
# test command's debug build: Scripts/check-recipes.py starts the README's
# server this way).
setup_and_build() {
  bash Scripts/setup.sh
  local product
  case "${PORTIER_BUILD:-release}" in
    release)
      BUILD_DIR=.build/release
      for product in "$@"; do swift build -c release --product "$product"; done ;;
    debug)
      BUILD_DIR=.build/debug
      for product in "$@"; do
        [ -x "$BUILD_DIR/$product" ] || { echo "PORTIER_BUILD=debug: $BUILD_DIR/$product is missing (swift build --product $product)" >&2; return 1; }
      done ;;
    *) echo "PORTIER_BUILD must be release or debug, not ${PORTIER_BUILD}" >&2; return 1 ;;
  esac
}

# Waits up to 30 s for a socket file to appear.
wait_for_socket() {
  for _ in $(seq 1 300); do [ -S "$1" ] && return 0; sleep 0.1; done
  echo "no socket $1" >&2
  return 1
}

# The seeded data of the check and change benchmarks in a new database of the
# throwaway cluster (pg_throwaway_start first): 1,000 environments, 100,000
# users, 10,000 organisations, 300,000 memberships (Scripts/bench-seed.sql).
# Sets DB to its connection string.
create_bench_database() {
  DB="${PORTIER_TEST_DATABASE_URL/dbname=postgres/dbname=$1}"
  "$PG_BIN/psql" "$PORTIER_TEST_DATABASE_URL" -qc "CREATE DATABASE $1"
  .build/release/portierd migrate --database-url "$DB" --log-level warning
  echo "seeding…"
  /usr/bin/time -f "seeded in %e s" "$PG_BIN/psql" "$DB" -q -v envs=1000 -v upe=100 -v ope=10 -f Scripts/bench-seed.sql
}
