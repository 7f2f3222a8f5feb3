#!/usr/bin/env python3
"""Restarts that lose nothing (issue 16), proved like systemd does it.

A small supervisor holds the two listening sockets (as systemd's socket
units do) and hands them to portierd by socket activation (LISTEN_FDS,
LISTEN_PID, LISTEN_FDNAMES). Clients ping without pause while one portierd
is stopped (SIGTERM: stop accepting, answer what is in flight, exit 0) and
the next is started on the same sockets. Connections made meanwhile wait in
the sockets' backlog. A request whose connection closed before it was read is
sent again on a new connection (what a client does after a server closed an
idle connection); an error reply, or no reply within 30 s, is a failure.

Checks: zero failed requests; every client was answered after each restart;
the socket files are still there after each stop (portierd never unlinks a
socket it did not create); each portierd exited 0.

Usage: zero-downtime.py PORTIERD DATABASE_URL WORK_DIR [RESTARTS]
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

portierd, database_url, work = sys.argv[1], sys.argv[2], sys.argv[3]
restarts = int(sys.argv[4]) if len(sys.argv) > 4 else 3
CLIENTS = 4

os.makedirs(work, exist_ok=True)
paths = {"service": os.path.join(work, "portier.sock"), "support": os.path.join(work, "support.sock")}
listeners = {}
for name, path in paths.items():
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(256)
    os.chmod(path, 0o600)
    listeners[name] = s
# Descriptors 3 and 4, as systemd passes them.
for fd, name in ((3, "service"), (4, "support")):
    if listeners[name].fileno() != fd:
        os.dup2(listeners[name].fileno(), fd)
    os.set_inheritable(fd, True)


def start(generation):
    log = open(os.path.join(work, f"portierd-{generation}.log"), "wb")
    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="service:support")
    # LISTEN_PID must be portierd's own pid: the shell sets it, then becomes portierd.
    command = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', portierd, "run",
               "--database-url", database_url, "--state-dir", os.path.join(work, "state"), "--log-level", "info"]
    return subprocess.Popen(command, env=env, pass_fds=(3, 4), stdout=log, stderr=subprocess.STDOUT)


lock = threading.Lock()
stats = {"ok": 0, "resent": 0, "failed": 0, "max_ms": 0.0}
answered = [0.0] * CLIENTS  # when each client last got an answer
stop = threading.Event()


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def client(index):
    conn = None
    request_id = 0
    while not stop.is_set():
        request_id += 1
        started = time.monotonic()
        while True:
            try:
                if conn is None:
                    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    conn.settimeout(30)
                    conn.connect(paths["service"])
                conn.sendall(frame({"id": request_id, "op": "ping"}))
                n = struct.unpack(">I", read_exact(conn, 4))[0]
                reply = json.loads(read_exact(conn, n))
                break
            except socket.timeout:
                reply = None
                break
            except (ConnectionError, OSError):
                # Closed before this request was read (the old server draining): send it again.
                if conn is not None:
                    conn.close()
                conn = None
                with lock:
                    stats["resent"] += 1
                if time.monotonic() - started > 30:
                    reply = None
                    break
                time.sleep(0.01)
        elapsed = (time.monotonic() - started) * 1000
        with lock:
            if reply is not None and reply.get("ok") is True and reply.get("id") == request_id:
                stats["ok"] += 1
                stats["max_ms"] = max(stats["max_ms"], elapsed)
                answered[index] = time.monotonic()
            else:
                stats["failed"] += 1
                print(f"client {index}: request {request_id} failed: {reply}", file=sys.stderr)


problems = []
server = start(0)
threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
for t in threads:
    t.start()
time.sleep(3)
for generation in range(1, restarts + 1):
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=60)
    if code != 0:
        problems.append(f"portierd {generation - 1} exited {code}, not 0")
    for name, path in paths.items():
        if not os.path.exists(path):
            problems.append(f"after stop {generation}: {path} was removed (portierd must not unlink a socket systemd owns)")
    restarted = time.monotonic()
    server = start(generation)
    time.sleep(2.5)
    with lock:
        late = [i for i, at in enumerate(answered) if at < restarted]
    if late:
        problems.append(f"after restart {generation}: clients {late} got no answer from the new portierd")
stop.set()
for t in threads:
    t.join(timeout=35)
server.send_signal(signal.SIGTERM)
if server.wait(timeout=60) != 0:
    problems.append("the last portierd did not exit 0")
if stats["failed"]:
    problems.append(f"{stats['failed']} requests failed")
print(f"zero-downtime: {restarts} restarts, {stats['ok']} pings answered, {stats['resent']} resent after a drained connection closed, "
      f"{stats['failed']} failed, slowest {stats['max_ms']:.0f} ms")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
