#!/usr/bin/env python3
"""portierd as an operator meets it (issue 16): exit codes, one clear log line
per start-up failure naming the setting, start-up order (sockets and the
metrics listener before the database), SIGHUP reload, SIGTERM, --version,
--print-database-url, JSON logs.

Usage: check-portierd.py PORTIERD DATABASE_URL WORK_DIR
Run by Scripts/test.sh; exits 1 listing what did not hold.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

portierd, database_url, work = sys.argv[1], sys.argv[2], sys.argv[3]
unreachable = "host=/nonexistent-portier-db connect_timeout=2"
problems = []
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def run(args, expect, needle, setting=None, env=None, user=None):
    """Runs portierd to its end; checks the exit code and its one critical line."""
    command = [portierd] + args
    if user:
        command = ["/usr/sbin/runuser", "-u", user, "--"] + command
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ, **(env or {})))
    output = done.stdout + done.stderr
    critical = [line for line in output.splitlines() if " critical " in line]
    label = " ".join(args)
    if done.returncode != expect:
        problems.append(f"{label}: exit {done.returncode}, expected {expect}\n{output[-800:]}")
    elif expect not in (0,) and len(critical) != 1:
        problems.append(f"{label}: expected one critical log line, got {len(critical)}\n{output[-800:]}")
    elif needle not in output:
        problems.append(f"{label}: '{needle}' not in the output\n{output[-800:]}")
    elif setting and f"setting={setting}" not in output:
        problems.append(f"{label}: the log line does not name {setting}\n{output[-800:]}")
    elif "NSCocoaErrorDomain" in output or "Error: " in output:
        problems.append(f"{label}: a raw error dump instead of a log line\n{output[-800:]}")
    else:
        print(f"  ok: {label} -> {done.returncode}")


def state(name):
    return os.path.join(work, name)


# --version and the help's exit-code table.
run(["--version"], 0, "0.")
run(["--help"], 0, "Exit codes:")
run(["--print-database-url", "--state-dir", state("p")], 0, "dbname=portier")

# A bad configuration file line: 78, naming the file and line.
with open(state("bad.conf"), "w") as f:
    f.write("pool-size = 4\nno equals sign here\n")
run(["--config", state("bad.conf")], 78, "bad.conf:2")
run(["--config", state("missing.conf")], 78, "missing.conf")

# Invalid values: 64, naming the option.
run(["--database-url", unreachable, "--state-dir", state("m"), "--service-socket-mode", "9x"], 64, "octal", "--service-socket-mode")
run(["--database-url", unreachable, "--state-dir", state("g"), "--service-grant", "bogus"], 64, "uid:N=", "--service-grant")
run(["--database-url", unreachable, "--state-dir", state("ml"), "--metrics-listen", "nowhere"], 64, "host:port", "--metrics-listen")

# A socket folder that cannot be made: 73, naming --socket-dir.
open(state("a-file"), "w").close()
run(["--database-url", unreachable, "--state-dir", state("s"), "--socket-dir", state("a-file") + "/sockets"], 73, "is not a folder", "--socket-dir")

# Sockets before the database: a socket a running server holds is found even with
# no database (73, not 69). A running portierd holds the lock beside its socket
# (R-OPS-2); this check holds it the same way.
import fcntl
os.makedirs(state("busy"))
busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
busy.bind(os.path.join(state("busy"), "portier.sock"))
busy.listen(1)
held = open(os.path.join(state("busy"), "portier.sock.lock"), "w")
fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
run(["--database-url", unreachable, "--state-dir", state("busy")], 73, "in use by a running server")
held.close()
# The same listening socket without the lock is one nobody serves (a child that
# inherited it from a crashed server): taken over, and the start goes on to the database.
run(["--database-url", unreachable, "--state-dir", state("busy")], 69, "taking over a socket")
busy.close()
# A socket that answers is served, lock or not (a socket-activated portierd may hold none): never taken over.
import threading
os.makedirs(state("served"))
served = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
served.bind(os.path.join(state("served"), "portier.sock"))
served.listen(8)


def answer():
    while True:
        try:
            conn, _ = served.accept()
        except OSError:
            return
        try:
            if conn.recv(64):
                conn.sendall(b"\0\0\0\2{}")
        except OSError:
            pass
        conn.close()


threading.Thread(target=answer, daemon=True).start()
run(["--database-url", unreachable, "--state-dir", state("served")], 73, "in use by a running server")
served.close()

# The metrics listener before the database: a taken port (73, not 69).
taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
taken.bind(("127.0.0.1", 0))
taken.listen(1)
port = taken.getsockname()[1]
run(["--database-url", unreachable, "--state-dir", state("metrics"), "--metrics-listen", f"127.0.0.1:{port}"], 73, "cannot serve metrics", "--metrics-listen")
taken.close()
if os.path.exists(os.path.join(state("metrics"), "portier.sock")):
    problems.append("a failed start left its socket file behind")

# No database: 69, naming --database-url; no socket file left behind.
run(["--database-url", unreachable, "--state-dir", state("nodb")], 69, "cannot migrate", "--database-url")
if os.path.exists(os.path.join(state("nodb"), "portier.sock")):
    problems.append("a failed start left its socket file behind")

# A socket group the server is not in: 77, with the systemd hint (needs root to run as another user).
if os.geteuid() == 0:
    # A folder `nobody` can reach: WORK_DIR's parents may be private (mktemp is 0700).
    import tempfile
    folder = tempfile.mkdtemp(prefix="portier-nobody-", dir="/tmp")
    os.chmod(folder, 0o755)
    os.chown(folder, pwd.getpwnam("nobody").pw_uid, -1)
    run(["--database-url", unreachable, "--state-dir", folder, "--service-socket-group", "daemon"], 77, "SupplementaryGroups=daemon",
        user="nobody")
    shutil.rmtree(folder, ignore_errors=True)
else:
    print("  skipped: socket group as another user (needs root)")

# SIGTERM during start-up (the embedded cluster starting): exit 0, nothing left behind.
import tempfile
early = tempfile.mkdtemp(prefix="portier-early-", dir="/tmp")
os.chmod(early, 0o755)
starting = subprocess.Popen([portierd, "--state-dir", early], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
time.sleep(0.5)
starting.send_signal(signal.SIGTERM)
_, err = starting.communicate(timeout=120)
left = [f for f in os.listdir(early) if f.endswith(".sock")]
running = subprocess.run(["pgrep", "-f", f"postgres -D {early}"], capture_output=True).returncode == 0
if starting.returncode != 0 or left or running:
    problems.append(f"SIGTERM during start-up: exit {starting.returncode}, sockets left {left}, PostgreSQL running {running}\n{err[-600:]}")
else:
    print("  ok: SIGTERM during start-up: exit 0, no socket, no PostgreSQL left")
shutil.rmtree(early, ignore_errors=True)

# Serving: JSON logs, SIGHUP reload, SIGTERM exits 0 and removes its own sockets.
conf = state("live.conf")
with open(conf, "w") as f:
    f.write("log-level = info\ninvitations-per-hour = 100\n")
log_path = state("live.log")
with open(log_path, "wb") as log:
    live = subprocess.Popen([portierd, "--database-url", database_url, "--state-dir", state("live"), "--config", conf, "--log-format", "json"],
                            stdout=log, stderr=subprocess.STDOUT)
sock = os.path.join(state("live"), "portier.sock")
for _ in range(300):
    if os.path.exists(sock):
        try:
            probe = socket.socket(socket.AF_UNIX)
            probe.connect(sock)
            probe.close()
            break
        except OSError:
            pass
    time.sleep(0.1)
def wait_for_log(needle, seconds=60):
    """Waits until portierd's log holds `needle` (the socket accepts before start-up ends)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            if needle in f.read():
                return True
        time.sleep(0.1)
    return False


# A SIGHUP during start-up waits for it: send the first only once serving, and
# break the file only once that reload was done, or both would read the broken one.
wait_for_log("portierd started")
with open(conf, "w") as f:
    f.write("log-level = debug\ninvitations-per-hour = 50\npool-size = 3\n")
live.send_signal(signal.SIGHUP)
wait_for_log('"reloaded"', seconds=30)
with open(conf, "w") as f:
    f.write("this is not a setting\n")
live.send_signal(signal.SIGHUP)
time.sleep(1)
live.send_signal(signal.SIGTERM)
code = live.wait(timeout=60)
if code != 0:
    problems.append(f"SIGTERM: exit {code}, expected 0")
events = []
for line in open(log_path, encoding="utf-8"):
    try:
        events.append(json.loads(line))
    except json.JSONDecodeError:
        problems.append(f"--log-format json wrote a line that is not JSON: {line[:200]}")
for event in events:
    if not {"time", "level", "label", "message", "source"} <= event.keys():
        problems.append(f"a JSON log event lacks fields: {event}")
        break
messages = [e.get("message") for e in events]
reloaded = [e for e in events if e.get("message") == "reloaded"]
if not reloaded or "invitations-per-hour" not in reloaded[0].get("metadata", {}).get("applied", ""):
    problems.append(f"SIGHUP: no 'reloaded' event applying invitations-per-hour: {messages}")
if not any("restart" in (m or "") and "pool-size" in json.dumps(e) for m, e in zip(messages, events)):
    problems.append("SIGHUP: pool-size was not named as needing a restart")
if "reload refused; nothing changed" not in messages:
    problems.append("SIGHUP with a broken file: not refused")
if not any(e.get("level") == "debug" for e in events):
    problems.append("SIGHUP: the new log level (debug) did not apply")
if os.path.exists(sock):
    problems.append("SIGTERM: portierd left the socket it created")
print(f"  ok: serving with JSON logs, {len(events)} events; SIGHUP applied and refused as expected; SIGTERM exit {code}")

if problems:
    print("\n\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("portierd: start-up, exit codes, reload and stop as documented")
