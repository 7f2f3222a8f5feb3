#!/usr/bin/env python3
"""A crash leaves nothing that blocks the next start (R-OPS-2).

portierd runs with its embedded PostgreSQL (no --database-url) under a state
folder. Four clients sign up new addresses without pause; each address whose
sign-up was answered ok is acknowledged. portierd alone is killed with
SIGKILL in the middle of that, several times. After each kill:

- the embedded cluster is still running (nobody stopped it), and no process
  holds portier.sock: a connect is refused at once instead of waiting in the
  backlog of a socket nobody serves (no child inherited portierd's sockets);
- the next portierd on the same state folder starts (it adopts its cluster)
  and answers a ping within 10 s of being started;
- every acknowledged sign-up is in the database.

At the end a SIGTERM stops portierd (exit 0), which stops its cluster.

Usage: crash-restart.py PORTIERD WORK_DIR [KILLS]
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from portier_wire import frame, read_exact, call

portierd, work = sys.argv[1], sys.argv[2]
kills = int(sys.argv[3]) if len(sys.argv) > 3 else 3
CLIENTS = 4
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chmod(work, 0o755)
state = os.path.join(work, "state")
service = os.path.join(state, "portier.sock")
problems = []








def start(generation):
    log = open(os.path.join(work, f"portierd-{generation}.log"), "wb")
    return subprocess.Popen([portierd, "--state-dir", state, "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)


def answers_ping(timeout):
    """Seconds until a ping on a new connection is answered, or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(max(0.1, timeout - (time.monotonic() - started)))
            conn.connect(service)
            if call(conn, {"id": 1, "op": "ping"}).get("ok"):
                return time.monotonic() - started
        except (OSError, ConnectionError, ValueError):
            time.sleep(0.05)
        finally:
            conn.close()
    return None


acknowledged = []
lock = threading.Lock()
running = threading.Event()


def signer(index):
    n = 0
    while running.is_set():
        try:
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(5)
            conn.connect(service)
            while running.is_set():
                n += 1
                email = f"c{index}n{n}@crash{index}x{n}.test"
                reply = call(conn, {"id": n, "op": "signup", "params": {"email": email}})
                if reply.get("ok"):
                    with lock:
                        acknowledged.append(email)
        except (OSError, ConnectionError, ValueError):
            time.sleep(0.05)  # the server is gone: try again until it is back
        finally:
            conn.close()


def database_url():
    return subprocess.run([portierd, "--print-database-url", "--state-dir", state], capture_output=True, text=True, check=True).stdout.strip()


def postmaster_running():
    try:
        pid = int(open(os.path.join(state, "pg", "postmaster.pid")).readline())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


server = start(0)
if answers_ping(120) is None:  # the first start runs initdb
    sys.exit(f"portierd did not start: {open(os.path.join(work, 'portierd-0.log')).read()[-2000:]}")
running.set()
threads = [threading.Thread(target=signer, args=(i,), daemon=True) for i in range(CLIENTS)]
for t in threads:
    t.start()
for generation in range(1, kills + 1):
    time.sleep(2)
    before = len(acknowledged)
    server.send_signal(signal.SIGKILL)
    server.wait()
    if not postmaster_running():
        problems.append(f"kill {generation}: the embedded cluster did not survive the kill of portierd alone (nothing to adopt)")
    probe = socket.socket(socket.AF_UNIX)
    probe.settimeout(2)
    try:
        probe.connect(service)
        problems.append(f"kill {generation}: {service} still accepts connections after portierd died: a child holds its socket")
    except socket.timeout:
        problems.append(f"kill {generation}: connecting to {service} hangs: a child holds its socket")
    except OSError:
        pass  # refused (or gone): nobody holds it, as it should be
    finally:
        probe.close()
    server = start(generation)
    took = answers_ping(10)
    if took is None:
        problems.append(f"kill {generation}: the next portierd did not answer within 10 s; its log: "
                        f"{open(os.path.join(work, f'portierd-{generation}.log')).read()[-1500:]}")
        break
    print(f"  kill {generation}: {before} sign-ups acknowledged so far; the next portierd answered {took:.1f} s after its start")
time.sleep(1)
running.clear()
for t in threads:
    t.join(timeout=10)

with lock:
    expected = set(acknowledged)
found = subprocess.run(["psql", database_url(), "-Atc", "SELECT email FROM users"], capture_output=True, text=True)
if found.returncode != 0:
    problems.append(f"cannot read the embedded database: {found.stderr}")
else:
    missing = expected - set(found.stdout.split())
    print(f"  {len(expected) - len(missing)} of {len(expected)} acknowledged sign-ups are in the database")
    if missing:
        problems.append(f"{len(missing)} acknowledged sign-ups are missing, e.g. {sorted(missing)[:3]}")
server.send_signal(signal.SIGTERM)
code = server.wait(timeout=120)
if code != 0:
    problems.append(f"the last portierd exited {code} at SIGTERM, not 0")
if postmaster_running():
    problems.append("the embedded cluster is still running after portierd's SIGTERM")
print(f"crash restarts: {kills} kills of portierd during sign-ups, {len(expected)} acknowledged, {len(problems)} problems")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
