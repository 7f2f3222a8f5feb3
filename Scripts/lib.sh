# Shared by the Scripts/ entry points; source it from the repository root.

# Installs what is missing (as root), then builds the given products (release).
setup_and_build() {
  bash Scripts/setup.sh
  local product
  for product in "$@"; do swift build -c release --product "$product"; done
}

# Waits up to 30 s for a socket file to appear.
wait_for_socket() {
  for _ in $(seq 1 300); do [ -S "$1" ] && return 0; sleep 0.1; done
  echo "no socket $1" >&2
  return 1
}
