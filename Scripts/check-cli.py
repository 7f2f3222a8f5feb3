#!/usr/bin/env python3
"""The command-line tools as a user meets them (docs/cli.md): --version on every
executable, the CLI's exit codes and its explanations when there is no
server, global options before the subcommand, "did you mean" for subcommands
and options, the subcommand's usage on a usage error, passwords refused as
arguments, paging hints on standard error and --all on every list (outbox
--tokens too), `check --exit-code`, `check-bulk`, `metrics` and the support
socket beside the service socket, `watch`; `portierd --help` with the run
options; portier-load's small default shape, its help and its error for a
missing manifest.

Usage: check-cli.py BIN_DIR DATABASE_URL WORK_DIR
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

bin_dir, database_url, work = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
problems = []


def run(args, expect, needle="", stdin=None, env=None):
    done = subprocess.run([os.path.join(bin_dir, args[0])] + args[1:], capture_output=True, text=True, timeout=120,
                          input=stdin, env=dict(os.environ, **(env or {})))
    output = done.stdout + done.stderr
    if done.returncode != expect or needle not in output:
        problems.append(f"{' '.join(args)}: exit {done.returncode} (expected {expect}), wanted '{needle}' in:\n{output[-600:]}")
    else:
        print(f"  ok: {' '.join(args)[:90]} -> {done.returncode}")
    return output


for tool in ("portierd", "portier", "portier-load", "portier-bench"):
    run([tool, "--version"], 0, "0.")
run(["portier", "--help"], 0, "Exit codes:")
run(["portierd", "--help"], 0, "--pool-size")  # the run options, not only the subcommands

# Habits people bring (docs/cli.md): each caught before anything is sent (no server needed).
run(["portier", "usr", "list", "--as", "a"], 64, "Did you mean 'user'?")
run(["portier", "outbox", "lsit"], 64, "Did you mean 'list'?")
run(["portier", "user", "list", "--ass", "a"], 64, "Did you mean '--as'?")
run(["portier", "user", "get"], 64, "Usage: portier user get")  # the subcommand's usage
run(["portier", "activate", "tok", "--password", "x"], 64, "not taken as arguments")
run(["portier", "password", "change", "--as", "a", "--current", "x", "--new", "y"], 64, "not taken as arguments")


def split_run(args, env):
    """stdout and stderr apart (paging hints belong on stderr)."""
    done = subprocess.run([os.path.join(bin_dir, args[0])] + args[1:], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env))
    return done.returncode, done.stdout, done.stderr

# No server: exit 3, and what to do.
missing = os.path.join(work, "nothing", "portier.sock")
run(["portier", "ping", "--socket", missing], 3, "no portierd listening at " + missing + ": is it running? Set --socket or PORTIER_SOCKET")
stale = os.path.join(work, "stale.sock")
s = socket.socket(socket.AF_UNIX)
s.bind(stale)
s.close()  # a socket file nobody listens on
run(["portier", "ping", "--socket", stale], 3, "nothing accepts connections")
run(["portier", "metrics"], 3, "support.sock", env={"PORTIER_SOCKET": missing})

# A live server: support commands find support.sock beside the service socket.
state = os.path.join(work, "state")
server = subprocess.Popen([os.path.join(bin_dir, "portierd"), "--database-url", database_url, "--state-dir", state, "--log-level", "warning"])
service = os.path.join(state, "portier.sock")
for _ in range(300):
    if os.path.exists(service):
        break
    time.sleep(0.1)
env = {"PORTIER_SOCKET": service}
run(["portier", "ping"], 0, "pong", env=env)
run(["portier", "--socket", service, "ping"], 0, "pong")  # a global option before the subcommand
run(["portier", "--json", "--socket", service, "hello"], 0, '"server"')
run(["portier", "metrics"], 0, "# HELP portier_build_info", env=env)
run(["portier", "signup", "alice@cli.test"], 0, "created a new environment", env=env)
for address in ("bob@cli.test", "carol@cli.test"):
    run(["portier", "signup", address], 0, "joined an existing environment", env=env)
# Paging: one page on standard output, the hint on standard error; --all everywhere, outbox --tokens too.
code, out, err = split_run(["portier", "outbox", "list", "--tokens", "--limit", "1"], env)
if code != 0 or len(out.split()) != 1 or "more rows: --cursor" not in err or "cursor" in out:
    problems.append(f"outbox list --tokens --limit 1: exit {code}, stdout {out!r}, stderr {err!r}")
else:
    print("  ok: outbox list --tokens --limit 1 -> one token on stdout, the paging hint on stderr")
code, out, err = split_run(["portier", "outbox", "list", "--tokens", "--limit", "1", "--all"], env)
if code != 0 or len(out.split()) != 3 or "more rows" in err:
    problems.append(f"outbox list --tokens --limit 1 --all: exit {code}, stdout {out!r}, stderr {err!r}")
else:
    print("  ok: outbox list --tokens --limit 1 --all -> every token")
run(["portier", "check", "usr_1_1", "users.invite", "--exit-code"], 1, "denied (not_activated)", env=env)
run(["portier", "check", "usr_1_1", "users.invite"], 0, "denied", env=env)
bulk = json.dumps([{"user": "usr_1_1", "permission": "users.invite"}, {"user": "nobody@cli.test", "permission": "users.invite"}])
run(["portier", "check-bulk", "-"], 0, "unknown_user", stdin=bulk, env=env)
run(["portier", "check-bulk", "-", "--exit-code"], 1, "not_activated", stdin=bulk, env=env)
run(["portier", "check-bulk", os.path.join(work, "no-such.json")], 64, "cannot read", env=env)
run(["portier", "user", "get", "usr_1_1", "--as", "usr_9_9"], 2, "portier: ", env=env)
run(["portier", "support", "appoint-admin", "--environment", "env_1", "--user", "usr_1_1", "--method", "known_email", "--reference", "x"],
    0, "appointed", env=env)  # reached support.sock beside the service socket (on the service socket: forbidden)
# portier watch: one JSON event per line as changes commit (R-WAT-1); Alice's
# activation (invited -> active) is one.
watcher = subprocess.Popen([os.path.join(bin_dir, "portier"), "watch", "--environment", "env_1", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **env))
time.sleep(1)
token = run(["portier", "outbox", "list", "--to", "alice@cli.test", "--kind", "activation", "--tokens"], 0, env=env).strip().splitlines()[-1]
run(["portier", "activate", token, "--password-stdin"], 0, stdin="correct horse battery\n", env=env)
watched = None
try:
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(watcher.stdout, selectors.EVENT_READ)
    if sel.select(timeout=20):
        watched = json.loads(watcher.stdout.readline())
finally:
    watcher.terminate()
    watcher.wait(timeout=30)
if not watched or watched.get("environment") != "env_1" or not watched.get("changes"):
    problems.append(f"portier watch --json printed no event of env_1 for the activation: {watched}")
else:
    print(f"  ok: portier watch --environment env_1 --json -> {watched['changes'][0]['kind']}")
run(["portier", "watch", "--environment", "env_1", "--after", "env_1:99999999"], 2, "bad_request", env=env)
run(["portier", "watch", "--environment", "env_404"], 2, "not_found", env=env)
server.terminate()
server.wait(timeout=60)

# portier-load: a small default shape, help for every size, a clear missing-manifest error.
help_text = run(["portier-load", "seed", "--help"], 0, "--shape")
for option in ("--environments", "--users", "--organisations", "--memberships"):
    if f"{option} <" not in help_text or "default: the shape's" not in help_text:
        problems.append(f"portier-load seed --help: {option} has no help")
run(["portier-load", "run", "--socket", service, "--manifest", os.path.join(work, "missing.json")], 64,
    "Run `portier-load seed` first, or give --manifest")
run(["portierd", "--print-database-url", "--state-dir", "/var/lib/portier"], 0, "host=/var/lib/portier/pg")

if problems:
    print("\n\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("command-line tools: versions, exit codes and messages as documented")
