#!/usr/bin/env python3
"""Checks that Protocol/ describes what the server really does.

Without arguments: every schema is valid JSON Schema, every operation has a
request and a reply example, and every example frame validates against its schema.

With --live SOCKET: runs a scenario against a running portierd, validating every
request sent and every reply received against the operation's schemas.
--record writes those frames to Protocol/examples/ (how the examples were made).
"""
import argparse, json, pathlib, socket, struct, sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Protocol"
SCHEMAS = ROOT / "schemas"
EXAMPLES = ROOT / "examples"


def load_registry():
    resources, schemas = [], {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        resources.append((schema["$id"], Resource.from_contents(schema)))
        schemas[path.name] = schema
    return Registry().with_resources(resources), schemas


REGISTRY, SCHEMA_FILES = load_registry()
OPS = sorted({name.rsplit(".", 2)[0] for name in SCHEMA_FILES if name.endswith(".request.json")})


def validator(op, kind):
    return Draft202012Validator(SCHEMA_FILES[f"{op}.{kind}.json"], registry=REGISTRY)


def check(op, kind, frame, where):
    errors = sorted(validator(op, kind).iter_errors(frame), key=lambda e: e.path)
    for e in errors:
        print(f"FAIL {where}: {op} {kind}: {e.message} at /{'/'.join(map(str, e.absolute_path))}")
    return not errors


def validate_examples():
    failures, count = 0, 0
    for op in OPS:
        for kind in ("request", "reply") + (("event",) if op == "watch" else ()):
            found = sorted(EXAMPLES.glob(f"{op}.{kind}*.json"))
            if not found:
                print(f"FAIL no example for {op} {kind}")
                failures += 1
            for path in found:
                count += 1
                if not check(op, kind, json.loads(path.read_text()), path.name):
                    failures += 1
    # The closing frame of a graceful stop (R-OPS-1) belongs to no operation.
    closing = Draft202012Validator(SCHEMA_FILES["closing.json"], registry=REGISTRY)
    for path in sorted(EXAMPLES.glob("closing*.json")):
        count += 1
        for e in closing.iter_errors(json.loads(path.read_text())):
            print(f"FAIL {path.name}: closing: {e.message}")
            failures += 1
    return count, failures


class Watcher:
    """A connection that holds watches: reads event frames and replies as they come."""

    def __init__(self, path):
        self.conn = Connection(path)
        self.events = []

    def exchange(self, op, params=None):
        request = {"id": self.conn.next_id, "op": op}
        self.conn.next_id += 1
        if params is not None:
            request["params"] = params
        body = json.dumps(request).encode()
        self.conn.sock.sendall(struct.pack(">I", len(body)) + body)
        while True:
            frame = self.read()
            if "event" in frame:
                self.events.append(frame)
            elif frame.get("id") == request["id"]:
                return request, frame
            else:
                raise ValueError(f"unexpected frame {frame}")

    def read(self):
        header = self.conn._read(4)
        return json.loads(self.conn._read(struct.unpack(">I", header)[0]))

    def drain(self, quiet=0.5):
        """Reads event frames until none comes for `quiet` seconds."""
        self.conn.sock.settimeout(quiet)
        try:
            while True:
                self.events.append(self.read())
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.conn.sock.settimeout(None)


class Connection:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.next_id = 1

    def exchange(self, op, params=None, actor=None):
        request = {"id": self.next_id, "op": op}
        self.next_id += 1
        if actor is not None:
            request["actor"] = actor
        if params is not None:
            request["params"] = params
        body = json.dumps(request).encode()
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        header = self._read(4)
        reply = json.loads(self._read(struct.unpack(">I", header)[0]))
        return request, reply

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("server closed the connection")
            data += chunk
        return data


def live(path, record):
    conn = Connection(path)
    support = Connection(str(pathlib.Path(path).parent / "support.sock"))
    failures, frames, recorded = 0, 0, {}

    def run(op, params=None, actor=None, expect_ok=True, label=None, via=None):
        nonlocal failures, frames
        request, reply = via.exchange(op, params) if isinstance(via, Watcher) else (via or conn).exchange(op, params, actor)
        frames += 2
        if not check(op, "request", request, "live"):
            failures += 1
        if not check(op, "reply", reply, "live"):
            failures += 1
        if reply.get("ok") != expect_ok:
            print(f"FAIL live: {op} expected ok={expect_ok}, got {json.dumps(reply)}")
            failures += 1
        name = f"{op}.%s" + (f".{label}" if label else "") + ".json"
        recorded.setdefault(name % "request", request)
        recorded.setdefault(name % "reply", reply)
        return reply.get("result", {})

    run("hello")
    run("ping")
    # A watch of every environment follows the whole scenario (R-WAT-1).
    watcher = Watcher(path)
    everything = run("watch", {}, via=watcher, label="everywhere")
    run("signup", {"email": "alice@acme.test", "name": "Alice Example"})
    run("signup", {"email": "bob@acme.test"}, label="joined")
    run("signup", {"email": "not-an-email"}, expect_ok=False, label="invalid")
    messages = run("outbox.list", {"limit": 10})["messages"]
    token = next(m["token"] for m in messages if m["to"] == "alice@acme.test" and m["kind"] == "activation")
    run("user.activate", {"token": token, "password": "correct horse battery"})
    run("user.activate", {"token": token, "password": "correct horse battery"}, expect_ok=False, label="used")
    run("user.authenticate", {"email": "alice@acme.test", "password": "correct horse battery"})
    run("user.authenticate", {"email": "alice@acme.test", "password": "wrong"}, expect_ok=False, label="wrong")
    acme = run("environment.get", actor="alice@acme.test")["environment"]["id"]
    named = run("watch", {"environments": [acme]}, via=watcher)
    run("watch", {"environments": [acme], "after": [named["revisions"][0]]}, via=watcher, label="after")
    run("watch", {"environments": ["env_999999"]}, via=watcher, expect_ok=False, label="unknown")
    run("outbox.ack", {"ids": [messages[0]["id"]]})
    run("outbox.ack", {"ids": ["msg_1_999999"]}, expect_ok=False, label="unknown")

    def token(to, kind="activation"):
        found = [m["token"] for m in conn.exchange("outbox.list", {"limit": 1000})[1]["result"]["messages"]
                 if m["to"] == to and m["kind"] == kind]
        return found[-1]

    alice = "alice@acme.test"
    bob = run("user.invite", {"email": "dave@acme.test", "role": "advanced"}, actor=alice)["user"]
    conn.exchange("user.activate", {"token": token("dave@acme.test"), "password": "correct horse battery"})
    run("user.invite", {"email": "eve@acme.test"}, actor=bob["id"], expect_ok=False, label="forbidden")
    carol = run("user.invite", {"email": "carol@acme.test"}, actor=alice, label="basic")["user"]
    run("user.resend_invitation", {"user": carol["id"]}, actor=alice)
    run("user.get", {"user": "dave@acme.test"}, actor=alice)
    run("user.list", {"status": "invited", "limit": 10}, actor=alice)
    run("user.set_role", {"user": bob["id"], "role": "administrator"}, actor=alice)
    run("user.set_role", {"user": alice, "role": "basic"}, actor=bob["id"])
    run("user.set_role", {"user": bob["id"], "role": "basic"}, actor=bob["id"], expect_ok=False, label="last_administrator")
    run("user.block", {"user": carol["id"]}, actor=bob["id"], expect_ok=False, label="invited")
    run("user.block", {"user": alice}, actor=bob["id"])
    run("user.unblock", {"user": alice}, actor=bob["id"])
    run("user.email.add", {"email": "dave.invoices@acme.test"}, actor=bob["id"])
    run("user.email.verify", {"token": token("dave.invoices@acme.test", "email_verification")})
    run("user.email.remove", {"email": "dave.invoices@acme.test"}, actor=bob["id"])
    run("user.remove", {"user": carol["id"]}, actor=bob["id"])
    run("audit.list", {"limit": 5}, actor=bob["id"])
    run("support.appoint_admin", {"environment": bob["environment"], "user": alice,
                                  "verification": {"method": "kvk_extract", "reference": "KvK extract 12345678, 2026-11-24"}}, via=support)
    run("support.appoint_admin", {"environment": bob["environment"], "user": "ghost@acme.test",
                                  "verification": {"method": "known_email", "reference": "mail from ghost@acme.test"}},
        via=support, expect_ok=False, label="unknown_user")

    # Password recovery and change (R-USR-14, R-USR-15).
    run("user.password.forgot", {"email": "dave@acme.test"})
    run("user.password.forgot", {"email": "nobody@acme.test"}, label="unknown")
    reset_token = token("dave@acme.test", "password_reset")
    run("user.password.reset", {"token": reset_token, "password": "correct horse battery"})
    run("user.password.reset", {"token": reset_token, "password": "correct horse battery"}, expect_ok=False, label="used")
    run("user.password.change", {"current_password": "wrong password", "new_password": "another horse battery"},
        actor="dave@acme.test", expect_ok=False, label="wrong")
    run("user.password.change", {"current_password": "correct horse battery", "new_password": "correct horse battery"}, actor="dave@acme.test")

    # Organisations, memberships, partnerships, inbox, checks.
    conn.exchange("signup", {"email": "pat@partner.test"})
    conn.exchange("user.activate", {"token": token("pat@partner.test"), "password": "correct horse battery"})
    pat = "pat@partner.test"
    org = run("organisation.create", {"name": "Acme BV", "kvk_number": "12345678", "country": "nl"}, actor=alice)["organisation"]
    run("organisation.update", {"organisation": org["id"], "country": "BE"}, actor=alice)
    run("organisation.update", {"organisation": org["id"], "kvk_number": "1234"}, actor=alice, expect_ok=False, label="bad_kvk")
    run("member.add", {"organisation": org["id"], "user": "dave@acme.test"}, actor=alice, expect_ok=False, label="inactive")
    run("organisation.activate", {"organisation": org["id"]}, actor=alice)
    run("organisation.get", {"organisation": org["id"]}, actor=alice)
    conn.exchange("user.invite", {"email": "frank@acme.test"}, actor=alice)
    conn.exchange("user.activate", {"token": token("frank@acme.test"), "password": "correct horse battery"})
    run("support.appoint_admin", {"environment": bob["environment"], "user": "frank@acme.test", "organisations": [org["id"]],
                                  "verification": {"method": "known_email", "reference": "reply from frank@acme.test"}},
        via=support, label="organisations")
    run("organisation.list", {}, actor=alice)
    run("member.add", {"organisation": org["id"], "user": "dave@acme.test"}, actor=alice)
    run("member.set_role", {"organisation": org["id"], "user": "dave@acme.test", "role": "administrator"}, actor=alice)
    run("member.add", {"organisation": org["id"], "user": pat}, actor=alice, expect_ok=False, label="no_partnership")
    ptn = run("partnership.propose", {"email": pat}, actor=alice)["partnership"]
    run("partnership.accept", {"partnership": ptn["id"]}, actor=pat)
    run("partnership.list", None, actor=pat)
    run("member.add", {"organisation": org["id"], "user": pat, "role": "member"}, actor="dave@acme.test", label="partner")
    requests = run("inbox.list", None, actor=pat)["requests"]
    run("inbox.accept", {"request": requests[0]["id"]}, actor=pat)
    run("inbox.accept", {"request": requests[0]["id"]}, actor=pat, expect_ok=False, label="answered")
    run("member.list", {"organisation": org["id"]}, actor=alice)
    first_page = run("member.list", {"organisation": org["id"], "limit": 1}, actor=alice, label="paged")
    if "next_cursor" not in first_page:
        print("FAIL live: member.list with limit 1 of several members has no next_cursor")
        failures += 1
    else:
        run("member.list", {"organisation": org["id"], "limit": 1, "cursor": first_page["next_cursor"]}, actor=alice, label="next_page")
    run("member.list", {"organisation": org["id"], "cursor": "not a cursor"}, actor=alice, expect_ok=False, label="bad_cursor")
    run("check", {"user": pat, "permission": "documents.view", "organisation": org["id"]})
    run("check", {"user": alice, "permission": "users.invite"}, label="environment")
    run("check", {"user": alice, "permission": "documents.view"}, expect_ok=False, label="missing_organisation")
    run("check.bulk", {"checks": [{"user": pat, "permission": "members.manage", "organisation": org["id"]},
                                  {"user": "dave@acme.test", "permission": "members.manage", "organisation": org["id"]},
                                  {"user": "nobody@acme.test", "permission": "documents.view", "organisation": org["id"]}]})
    run("lookup.organisations", {"user": pat, "permission": "documents.view"})
    run("lookup.users", {"organisation": org["id"], "permission": "members.manage"})
    run("member.remove", {"organisation": org["id"], "user": pat}, actor=alice)
    run("partnership.end", {"partnership": ptn["id"]}, actor=pat)
    second = run("partnership.propose", {"environment": ptn["partner"]}, actor=alice, label="by_id")["partnership"]
    run("partnership.decline", {"partnership": second["id"]}, actor=pat)
    conn.exchange("partnership.propose", {"environment": ptn["partner"]}, actor=alice)
    proposal = run("inbox.list", None, actor=pat, label="proposal")["requests"][0]
    run("inbox.accept", {"request": proposal["id"]}, actor=pat, label="partnership")
    conn.exchange("member.add", {"organisation": org["id"], "user": pat}, actor=alice)
    membership_request = conn.exchange("inbox.list", None, actor=pat)[1]["result"]["requests"][0]
    run("inbox.decline", {"request": membership_request["id"]}, actor=pat)
    run("user.offboard", {"user": "dave@acme.test"}, actor=alice)

    # Every event frame the watches got validates, and the feed saw the scenario's kinds.
    watcher.drain()
    kinds = set()
    for event in watcher.events:
        frames += 1
        if not check("watch", "event", event, "live"):
            failures += 1
        kinds.update(c["kind"] for c in event["event"]["changes"])
        recorded.setdefault("watch.event.%s.json" % event["event"]["changes"][0]["kind"].replace(".", "_"), event)
    wanted = {"user.role_changed", "user.status_changed", "user.removed", "membership.added", "membership.accepted",
              "membership.role_changed", "membership.removed", "organisation.added", "organisation.status_changed",
              "partnership.activated", "partnership.ended"}
    if not wanted <= kinds:
        print(f"FAIL live: the watches saw no {sorted(wanted - kinds)}")
        failures += 1
    by_watch = {}
    for event in watcher.events:
        by_watch.setdefault((event["id"], event["event"]["environment"]), []).append(int(event["event"]["revision"].split(":")[1]))
    for key, revisions in by_watch.items():
        if revisions != sorted(set(revisions)):
            print(f"FAIL live: watch {key} frames out of order or repeated: {revisions}")
            failures += 1
    run("watch.cancel", {"watch": everything["watch"]}, via=watcher)
    run("watch.cancel", {"watch": everything["watch"]}, via=watcher, expect_ok=False, label="unknown")

    if record:
        for name, frame in recorded.items():
            (EXAMPLES / name).write_text(json.dumps(frame, indent=2) + "\n")
        print(f"recorded {len(recorded)} example frames in {EXAMPLES}")
    return frames, failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--live", metavar="SOCKET")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.live:
        frames, failures = live(args.live, args.record)
        print(f"protocol live: {frames} frames checked, {failures} failed")
    else:
        frames, failures = validate_examples()
        print(f"protocol examples: {frames} frames checked, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
