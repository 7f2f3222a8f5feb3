#!/usr/bin/env bash
# Exercises the least-privilege setup of Deploy/ (R-SEC-1) for real: three
# system users in the sockets' group, each a client under its own uid, against a
# portierd configured as in Deploy/README.md ("Least privilege"):
#   portier-query     check only                  (--service-grant uid:N=check)
#   portier-frontend  check and manage (default)
#   portier-mailer    mail only                   (--mailer-uid N --service-grant uid:N=none)
# and nobody but portierd's own user reaches the support socket (mode 0600).
# Needs root (useradd, runuser). Usage: bash Scripts/least-privilege.sh CONNINFO
# (an empty database it may migrate); Scripts/test.sh runs it when root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "least-privilege: needs root, skipped"; exit 0; }
CONNINFO=$1
BIN=${BIN:-.build/debug}
getent group portier-clients >/dev/null || groupadd --system portier-clients
for who in query frontend mailer; do
  id "portier-$who" >/dev/null 2>&1 || useradd --system --gid portier-clients --no-create-home --shell /usr/sbin/nologin "portier-$who"
done
uid() { id -u "portier-$1"; }
DIR=$(mktemp -d /tmp/portier-lp.XXXXXX)
chmod 755 "$DIR"
cleanup() { [ -n "${PID:-}" ] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; rm -rf "$DIR"; }
trap cleanup EXIT
"$BIN/portierd" --state-dir "$DIR" --database-url "$CONNINFO" --log-level warning \
  --service-socket-group portier-clients --service-socket-mode 660 \
  --service-grant "uid:$(uid query)=check" \
  --mailer-uid "$(uid mailer)" --service-grant "uid:$(uid mailer)=none" &
PID=$!
source Scripts/lib.sh
wait_for_socket "$DIR/portier.sock"

failures=0
# expect USER WANT COMMAND…: WANT is ok, or the error code the command must fail with.
expect() {
  local who=$1 want=$2; shift 2
  local out status=0
  out=$(runuser -u "portier-$who" -- "$BIN/portier" "$@" --socket "$DIR/portier.sock" 2>&1) || status=$?
  if [ "$want" = ok ] && [ $status -eq 0 ]; then echo "  ok: $who may $*"; return; fi
  if [ "$want" != ok ] && [ $status -ne 0 ] && grep -q "$want" <<<"$out"; then echo "  ok: $who may not $* ($want)"; return; fi
  echo "  FAILED: $who $* (wanted $want): $out"; failures=$((failures + 1))
}
echo "== least privilege (R-SEC-1)"
expect frontend ok signup alice@lp.test
expect frontend forbidden outbox list
expect query ok check usr_1_1 documents.view --organisation org_1_1
expect query forbidden signup bob@lp.test
expect query forbidden outbox list
expect mailer ok outbox list
expect mailer forbidden signup carol@lp.test
expect mailer forbidden check usr_1_1 documents.view --organisation org_1_1
out=$(runuser -u portier-query -- "$BIN/portier" ping --socket "$DIR/support.sock" 2>&1) && { echo "  FAILED: the support socket let portier-query in"; failures=$((failures + 1)); } \
  || echo "  ok: portier-query cannot open the support socket"
[ $failures -eq 0 ] && echo "least privilege: all checks passed" || { echo "least privilege: $failures failed"; exit 1; }
