"""The wire format of Protocol/README.md for the Python checks: a 4-byte
big-endian length, then one JSON object. Standard library only."""
import json
import struct


def frame(obj):
    """One frame with `obj` as its JSON payload."""
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def read_exact(conn, n):
    """n bytes from a socket; ConnectionError if it closes first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(conn):
    """The next frame's JSON object."""
    return json.loads(read_exact(conn, struct.unpack(">I", read_exact(conn, 4))[0]))


def call(conn, request):
    """Sends one request and reads the next frame (its reply when nothing else is in flight)."""
    conn.sendall(frame(request))
    return read_frame(conn)
