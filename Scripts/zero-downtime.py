#!/usr/bin/env python3
"""Restarts that lose nothing (R-OPS-1), proved like systemd does it.

A small supervisor holds the two listening sockets (as systemd's socket
units do) and hands them to portierd by socket activation (LISTEN_FDS,
LISTEN_PID, LISTEN_FDNAMES). While one portierd is stopped (SIGTERM: stop
accepting, answer what reached it, send each connection a `closing` frame,
exit 0) and the next is started on the same sockets, two kinds of clients run
without pause:

- one-shot clients: connect, send one `ping`, read its answer, close;
- pipelined clients: one connection, several requests in flight at once.

A client follows the protocol only: after a `closing` frame it resends, on a
new connection, what it sent after the frame's `last_id` (counted as resent by
the protocol). A connection that ends without an answer and without a
`closing` frame, an error reply, or no answer within 30 s is a failure; so is
a `closing` frame whose `last_id` names a request that was not answered.

Checks: zero failed requests; every closing frame validates against
Protocol/schemas/closing.json; every client was answered after each restart;
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

from portier_wire import frame, read_exact, read_frame

portierd, database_url, work = sys.argv[1], sys.argv[2], sys.argv[3]
restarts = int(sys.argv[4]) if len(sys.argv) > 4 else 3

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


def closing_validator():
    """Protocol/schemas/closing.json, with common.json for its references."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    schemas = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Protocol", "schemas")
    load = lambda name: json.load(open(os.path.join(schemas, name)))
    registry = Registry().with_resources([(n, Resource.from_contents(load(n))) for n in ("common.json", "closing.json")])
    return Draft202012Validator(load("closing.json"), registry=registry)


CLOSING = closing_validator()
lock = threading.Lock()
stats = {"ok": 0, "resent": 0, "failed": 0, "closing": 0, "max_ms": 0.0}
ONE_SHOT, PIPELINED, DEPTH = 3, 2, 8
answered = [0.0] * (ONE_SHOT + PIPELINED)  # when each client last got an answer
stop = threading.Event()








def connect():
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(paths["service"])
    return conn


def fail(index, what):
    with lock:
        stats["failed"] += 1
    print(f"{time.time():.3f} client {index}: {what}", file=sys.stderr)


def check_closing(index, frame):
    with lock:
        stats["closing"] += 1
    for error in CLOSING.iter_errors(frame):
        fail(index, f"closing frame {frame} does not match Protocol/schemas/closing.json: {error.message}")


def record(index, started):
    with lock:
        stats["ok"] += 1
        stats["max_ms"] = max(stats["max_ms"], (time.monotonic() - started) * 1000)
        answered[index] = time.monotonic()


def one_shot(index):
    """Connect, one ping, its answer, close; after a closing frame, again on a new connection."""
    request_id = 0
    while not stop.is_set():
        request_id += 1
        started = time.monotonic()
        while True:
            conn = None
            try:
                conn = connect()
                conn.sendall(frame({"id": request_id, "op": "ping"}))
                reply = read_frame(conn)
            except (OSError, ConnectionError, ValueError) as error:
                fail(index, f"request {request_id}: connection ended without an answer or a closing frame ({error})")
                break
            finally:
                if conn is not None:
                    conn.close()
            if "closing" in reply:
                check_closing(index, reply)
                if reply["closing"].get("last_id") == request_id:
                    fail(index, f"closing frame names request {request_id} as read, but it was not answered")
                    break
                with lock:
                    stats["resent"] += 1
                continue  # never read: send it again on a new connection
            if reply.get("ok") is True and reply.get("id") == request_id:
                record(index, started)
            else:
                fail(index, f"request {request_id}: {reply}")
            break


def pipelined(index):
    """One connection with DEPTH requests in flight; after a closing frame, the unread ones again."""
    next_id = 0
    conn = None
    outstanding = {}  # id -> when first sent
    while not stop.is_set() or outstanding:
        try:
            if conn is None:
                conn = connect()
                # A new connection: everything unanswered goes (again), in order.
                if outstanding:
                    conn.sendall(b"".join(frame({"id": i, "op": "ping"}) for i in sorted(outstanding)))
            try:
                while not stop.is_set() and len(outstanding) < DEPTH:
                    next_id += 1
                    outstanding[next_id] = time.monotonic()
                    conn.sendall(frame({"id": next_id, "op": "ping"}))
            except OSError:
                pass  # the server may have closed: what it sent before (a closing frame) is still to be read
            reply = read_frame(conn)
        except (OSError, ConnectionError, ValueError) as error:
            for i in sorted(outstanding):
                fail(index, f"request {i}: connection ended without an answer or a closing frame ({error})")
            return
        if "closing" in reply:
            check_closing(index, reply)
            last = reply["closing"].get("last_id")
            with lock:
                stats["resent"] += len(outstanding)
            if last in outstanding:
                fail(index, f"closing frame names request {last} as read, but it was not answered")
                outstanding.pop(last)
            conn.close()
            conn = None
            continue
        request_id = reply.get("id")
        if reply.get("ok") is True and request_id in outstanding:
            record(index, outstanding.pop(request_id))
        else:
            fail(index, f"unexpected reply {reply}")
    if conn is not None:
        conn.close()


problems = []
server = start(0)
threads = [threading.Thread(target=one_shot, args=(i,), daemon=True) for i in range(ONE_SHOT)]
threads += [threading.Thread(target=pipelined, args=(ONE_SHOT + i,), daemon=True) for i in range(PIPELINED)]
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
print(f"zero-downtime: {restarts} restarts, {ONE_SHOT} one-shot and {PIPELINED} pipelined clients (depth {DEPTH}): "
      f"{stats['ok']} pings answered, {stats['closing']} closing frames, {stats['resent']} resent after them, "
      f"{stats['failed']} failed, slowest {stats['max_ms']:.0f} ms")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
