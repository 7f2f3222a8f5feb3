#!/usr/bin/env python3
"""The documents are the tests (R-OPS-3, docs/rules.md section 12): the command
blocks of the Markdown documents are extracted and run as written.

A fenced block directly after a line `<!-- run: NAME -->` belongs to the recipe
NAME; the blocks of one name are concatenated in document order and run as one
bash script with `set -euo pipefail`. Blocks without the marker are
illustrations and are not run.

    check-recipes.py all BINDIR        what Scripts/test.sh runs: compose, readme, systemd
    check-recipes.py systemd BINDIR [--markdown Deploy/README.md] [--name systemd]
    check-recipes.py compose
    check-recipes.py readme BINDIR [--markdown README.md] [--keep-going] [--verbose]

BINDIR is the folder with portierd and portier (Scripts/test.sh passes
$PWD/.build/debug). Exits 1 listing what did not hold.

systemd (needs root; otherwise "skipped: needs root"). Deploy/README.md's
recipe (blocks `<!-- run: systemd -->`) starts from a PostgreSQL cluster with
only a superuser and must leave portierd serving. This machine has no running
systemd, so the check provides what the recipe needs around it:

- PostgreSQL: a fresh throwaway cluster (initdb as the `postgres` OS user, local
  connections by peer authentication, as Debian's packages set it up), its Unix
  socket in /run/postgresql, the folder the environment file's connection
  string names. If something already listens at /run/postgresql on port 5432,
  the cluster listens on another port there, and PGPORT names it in the
  recipe's environment and in the services' (said in the output). The cluster
  is stopped and deleted at the end.
- systemd: a `systemctl` (and `journalctl`) shim first on PATH. The shim asks
  a manager inside this process, which does with the units installed in
  /etc/systemd/system what systemd would: `daemon-reload` reads them;
  `start`/`enable --now` creates a socket unit's sockets (path, owner, group,
  mode, backlog, DirectoryMode) and holds them, and starts a service with its
  RuntimeDirectory/StateDirectory, EnvironmentFile and Environment, ${VAR}
  and $VAR expanded in ExecStart, as User/Group/SupplementaryGroups (setpriv),
  UMask and LimitNOFILE, the sockets at descriptors 3.. with LISTEN_FDS,
  LISTEN_FDNAMES (FileDescriptorName) and LISTEN_PID, and a NOTIFY_SOCKET;
  a Type=notify start succeeds at READY=1 within TimeoutStartSec, and fails the
  way systemd's does if the process exits first (then Restart=on-failure and
  RestartPreventExitStatus decide whether it is restarted or stays down);
  `reload` runs ExecReload ($MAINPID) and waits for READY=1 again; `restart`,
  `stop` (KillSignal to the main process, TimeoutStopSec), `is-active`,
  `is-enabled`, `status`. The sandboxing directives (ProtectSystem=, …) are not
  emulated.
- The binaries: the recipe installs `.build/release/portierd` and `portier`.
  It runs in a temporary folder that holds links to the repository's top-level
  entries and a `.build/release` that links to BINDIR (the debug build in the
  test command). The recipe's text is not changed.

After the recipe the service must be active and answer a client of the
clients' group on the service socket; stopping it must say STOPPING=1, exit 0
and leave the socket units' sockets in place. Then everything the recipe
installed is removed (/etc/portier, the units, /usr/local/bin/portierd and
portier, /var/lib/portier, /run/portier, /run/portierd; users and groups
stay), so the check runs again. It also runs `systemd-analyze verify` on the
three units of Deploy/systemd.

compose: Deploy/compose/compose.yaml parsed (PyYAML if installed, else a
small check), and every file it or its Containerfile references must exist.
No container runtime here: this is as far as compose is checked.

readme: a server started the way README.md's block `<!-- run:
readme-two-commands -->` says (its first line, `bash Scripts/run-server.sh`,
with `--state-dir DIR` in a temporary folder and PORTIER_BUILD=debug, so it
uses BINDIR instead of a release build), then the blocks `<!-- run:
readme-walkthrough -->` in bash with `set -euo pipefail`, BINDIR on PATH,
PORTIER_SOCKET at the server's socket, in a temporary working folder. A
command whose trailing comment starts with `# refused` must exit 2 (the CLI's
"refused by the server"; with `# refused: CODE`, naming CODE), and the run goes on; any other failing command fails
the check with its line and output (--keep-going: every failing command is
reported). Comment-only lines are skipped.
"""
import argparse
import fcntl
import glob
import grp
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SELF = os.path.abspath(__file__)
UNIT_DIR = "/etc/systemd/system"
# What the systemd recipe installs, removed after the check.
INSTALLED = ["/etc/portier", "/usr/local/bin/portierd", "/usr/local/bin/portier",
             *(os.path.join(UNIT_DIR, n) for n in ("portierd.service", "portierd.socket", "portierd-support.socket")),
             "/var/lib/portier", "/run/portier", "/run/portierd"]


# ---------------------------------------------------------------- Markdown

MARKER = re.compile(r"^<!--\s*run:\s*([\w.-]+)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)")


def extract(path, name):
    """The blocks marked `<!-- run: NAME -->`: [(first line number, text)]."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence:
            raise SystemExit(f"{path}:{i + 1}: a run marker must be directly followed by a fenced block")
        end = i + 2
        while end < len(lines) and not lines[end].startswith(fence.group(1)):
            end += 1
        if end == len(lines):
            raise SystemExit(f"{path}:{i + 2}: the fenced block is not closed")
        if m.group(1) == name:
            blocks.append((i + 3, "\n".join(lines[i + 2:end]) + "\n"))
        i = end + 1
    return blocks


def script_of(blocks, path, preamble):
    """One bash script of the blocks after the preamble's lines, with a map from its lines to the document's."""
    text = "".join(line + "\n" for line in preamble)
    where = {k + 1: "(the check's preamble)" for k in range(len(preamble))}
    for first, block in blocks:
        for k, _ in enumerate(block.rstrip("\n").split("\n")):
            where[len(where) + 1] = f"{os.path.relpath(path, REPO)}:{first + k}"
        text += block
    return text, where


# ---------------------------------------------------------------- systemd units

def parse_unit(path):
    """A unit file: {section: [(key, value)]}, continuation lines joined."""
    sections, current, pending = {}, None, ""
    for raw in open(path, encoding="utf-8").read().split("\n"):
        if not pending and (not raw.strip() or raw.strip()[0] in "#;"):
            continue
        line, pending = pending + raw.strip(), ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        if current is None or "=" not in line:
            continue
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


class Unit:
    def __init__(self, name, path):
        self.name, self.path = name, path
        self.kind = name.rsplit(".", 1)[1]
        self.mtime = os.stat(path).st_mtime
        self.sections = parse_unit(path)
        self.state = "inactive"  # active, activating, reloading, deactivating, failed
        self.sub = "dead"
        self.enabled = False
        self.since = None
        # socket units
        self.listeners = []
        # service units
        self.process = None
        self.main_pid = None
        self.notify = None
        self.messages = []  # (pid, text) heard on the notify socket
        self.result = None  # how the last run ended, e.g. "status=78/CONFIG"
        self.exit_code = None
        self.stopping = False
        self.log_path = None
        self.starts = []
        self.restart_timer = None
        self.reloads = 0

    def all(self, section, key):
        values = []
        for k, v in self.sections.get(section, []):
            if k == key:
                if v == "":
                    values = []
                else:
                    values.append(v)
        return values

    def get(self, section, key, default=None):
        values = self.all(section, key)
        return values[-1] if values else default

    def words(self, section, key):
        return [w for v in self.all(section, key) for w in v.split()]


def seconds(text, default):
    if text is None:
        return default
    text = text.strip()
    if text == "infinity":
        return 10 ** 9
    total, ok = 0.0, False
    for number, unit in re.findall(r"([\d.]+)\s*(ms|min|s|h|m)?", text):
        ok = True
        total += float(number) * {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600, None: 1, "": 1}[unit]
    return total if ok else default


SYSEXITS = {0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 64: "USAGE", 65: "DATAERR", 66: "NOINPUT", 69: "UNAVAILABLE",
            70: "SOFTWARE", 71: "OSERR", 72: "OSFILE", 73: "CANTCREAT", 74: "IOERR", 75: "TEMPFAIL", 76: "PROTOCOL",
            77: "NOPERMISSION", 78: "CONFIG", 203: "EXEC", 216: "GROUP", 217: "USER", 243: "CREDENTIALS"}


def systemd_words(line, env, unit):
    """ExecStart= split as systemd does: quotes, ${VAR} inside a word, a bare $VAR
    split at whitespace into words (none when empty), %-specifiers."""
    words, word, quote, bare, i = [], None, None, False, 0

    def flush():
        nonlocal word, bare
        if word is not None:
            m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
            if bare and m:
                words.extend(env.get(m.group(1), "").split())
            else:
                words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda g: env.get(g.group(1), ""), word))
        word, bare = None, False

    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and i + 1 < len(line):
                i += 1
                word += line[i]
            else:
                word += c
        elif c in " \t":
            flush()
        elif c in "'\"":
            word = word or ""
            quote = c
        elif c == "\\" and i + 1 < len(line):
            i += 1
            word = (word or "") + line[i]
        else:
            if word is None:
                bare = c == "$"
            word = (word or "") + c
        i += 1
    flush()
    spec = {"n": unit.name, "N": unit.name.rsplit(".", 1)[0], "p": unit.name.rsplit(".", 1)[0], "i": "", "t": "/run",
            "S": "/var/lib", "%": "%"}
    return [re.sub(r"%(.)", lambda m: spec.get(m.group(1), m.group(0)), w) for w in words]


def read_environment_file(path):
    values = {}
    text = open(path, encoding="utf-8").read().replace("\\\n", "")
    for line in text.split("\n"):
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


class Manager:
    """What systemd would do with the units in UNIT_DIR; serves the systemctl shim."""

    def __init__(self, work, extra_env):
        self.work, self.extra_env = work, extra_env
        self.units = {}
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.closed = False
        self.started_by_recipe = []
        self.control_path = os.path.join(work, "control.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.control_path)
        os.chmod(self.control_path, 0o600)
        self.server.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    # -- the shim's requests

    def serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                data = read_line(connection)
                try:
                    request = json.loads(data)
                    out, err = [], []
                    with self.lock:
                        if request["tool"] == "journalctl":
                            code = self.journalctl(request["argv"], out, err)
                        else:
                            code = self.systemctl(request["argv"], out, err)
                except Exception as error:  # a bug in the shim shows as a failing command
                    out, err, code = [], [f"systemctl shim: {type(error).__name__}: {error}"], 1
                reply = json.dumps({"out": "".join(l + "\n" for l in out), "err": "".join(l + "\n" for l in err), "code": code})
                try:
                    connection.sendall(reply.encode() + b"\n")
                except OSError:
                    pass

    def systemctl(self, argv, out, err):
        options = {a for a in argv if a.startswith("-")}
        args = [a for a in argv if not a.startswith("-")]
        quiet = bool(options & {"-q", "--quiet"})
        if not args:
            err.append("systemctl shim: list-units is not emulated")
            return 1
        verb, names = args[0], [self.full_name(n) for n in args[1:]]
        if verb == "daemon-reload":
            self.daemon_reload(err)
            return 0
        if verb in ("start", "stop", "restart", "reload", "enable", "disable", "status", "is-active", "is-enabled",
                    "is-failed", "try-restart", "reload-or-restart") and not names:
            err.append(f"Too few arguments.")
            return 1
        if verb == "enable" or verb == "disable":
            code = 0
            for name in names:
                unit = self.unit(name, err)
                if unit is None:
                    err.append(f"Failed to {verb} unit: Unit file {name} does not exist.")
                    return 1
                if not unit.sections.get("Install"):
                    err.append(f"The unit files have no installation config (WantedBy=, RequiredBy=, Also=, Alias=) ({name}).")
                for other in [name] + [self.full_name(n) for n in unit.words("Install", "Also")]:
                    u = self.unit(other, err)
                    if u is None or u.enabled == (verb == "enable"):
                        continue
                    u.enabled = verb == "enable"
                    for target in u.words("Install", "WantedBy"):
                        link = os.path.join(UNIT_DIR, f"{target}.wants", other)
                        err.append(f"Created symlink {link} → {u.path}." if u.enabled else f"Removed \"{link}\".")
            if "--now" in options:
                for name in names:
                    code = max(code, self.start(name, out, err, by_recipe=True) if verb == "enable" else self.stop(name, err))
            return code
        if verb == "start":
            return max(self.start(n, out, err, by_recipe=True) for n in names)
        if verb == "stop":
            return max(self.stop(n, err) for n in names)
        if verb in ("restart", "try-restart", "reload-or-restart"):
            code = 0
            for n in names:
                unit = self.unit(n, err)
                if unit is None:
                    err.append(f"Failed to restart {n}: Unit {n} not found.")
                    code = 5
                    continue
                if verb == "try-restart" and unit.state != "active":
                    continue
                if verb == "reload-or-restart" and unit.state == "active" and unit.get("Service", "ExecReload"):
                    code = max(code, self.reload(n, err))
                    continue
                self.stop(n, err)
                code = max(code, self.start(n, out, err, by_recipe=True))
            return code
        if verb == "reload":
            return max(self.reload(n, err) for n in names)
        if verb in ("is-active", "is-failed"):
            code = 3 if verb == "is-active" else 1
            states = []
            for n in names:
                unit = self.units.get(n)
                state = unit.state if unit else "inactive"
                states.append(state)
                if not quiet:
                    out.append(state)
            if verb == "is-active":
                return 0 if all(s == "active" for s in states) else 3
            return 0 if any(s == "failed" for s in states) else 1
        if verb == "is-enabled":
            code = 0
            for n in names:
                unit = self.unit(n, err)
                enabled = unit is not None and unit.enabled
                if not quiet:
                    out.append("enabled" if enabled else "disabled")
                code = code if enabled else 1
            return code
        if verb == "status":
            code = 0
            for n in names:
                code = max(code, self.status(n, out))
            return code
        if verb == "cat":
            for n in names:
                unit = self.unit(n, err)
                if unit:
                    out.append(f"# {unit.path}")
                    out.append(open(unit.path).read().rstrip("\n"))
            return 0
        err.append(f"systemctl shim: '{verb}' is not emulated")
        return 1

    def journalctl(self, argv, out, err):
        names = [self.full_name(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a in ("-u", "--unit")]
        names += [self.full_name(a.split("=", 1)[1]) for a in argv if a.startswith("--unit=")]
        lines = None
        for i, a in enumerate(argv[:-1]):
            if a in ("-n", "--lines"):
                lines = int(argv[i + 1])
        for n in names:
            unit = self.units.get(n)
            if unit and unit.log_path and os.path.exists(unit.log_path):
                text = open(unit.log_path, errors="replace").read().rstrip("\n").split("\n")
                out.extend(text[-lines:] if lines else text)
        if not names:
            err.append("journalctl shim: only -u UNIT is emulated")
            return 1
        return 0

    # -- units

    @staticmethod
    def full_name(name):
        return name if re.search(r"\.(service|socket|target|timer|mount|path)$", name) else name + ".service"

    def daemon_reload(self, err):
        for path in sorted(glob.glob(os.path.join(UNIT_DIR, "*.service")) + glob.glob(os.path.join(UNIT_DIR, "*.socket"))):
            name = os.path.basename(path)
            old = self.units.get(name)
            new = Unit(name, path)
            if old:  # keep what runs
                for field in ("state", "sub", "enabled", "since", "listeners", "process", "main_pid", "notify", "messages",
                              "result", "exit_code", "stopping", "log_path", "starts", "restart_timer", "reloads"):
                    setattr(new, field, getattr(old, field))
            self.units[name] = new

    def unit(self, name, err):
        """A unit, loaded from UNIT_DIR on first use as systemd does (no daemon-reload needed for a new file)."""
        unit = self.units.get(name)
        path = os.path.join(UNIT_DIR, name)
        if unit is None:
            if not os.path.isfile(path):
                return None
            unit = self.units[name] = Unit(name, path)
        elif os.path.isfile(path) and os.stat(path).st_mtime != unit.mtime:
            err.append(f"Warning: The unit file, source configuration file or drop-ins of {name} changed on disk. "
                       f"Run 'systemctl daemon-reload' to reload units.")
        return unit

    def set_state(self, unit, state, sub):
        unit.state, unit.sub = state, sub
        unit.since = time.time()
        self.changed.notify_all()

    # -- start

    def start(self, name, out, err, by_recipe=False, restarting=False):
        unit = self.unit(name, err)
        if unit is None:
            err.append(f"Failed to start {name}: Unit {name} not found.")
            return 5
        if by_recipe and name not in self.started_by_recipe:
            self.started_by_recipe.append(name)
        if unit.state in ("active", "reloading"):
            return 0
        if unit.restart_timer and not restarting:
            unit.restart_timer.cancel()
            unit.restart_timer = None
        for other in unit.words("Unit", "Requires") + unit.words("Unit", "BindsTo") + unit.words("Service", "Sockets"):
            if self.unit(other, err) is None:
                if other in unit.words("Unit", "Requires"):
                    err.append(f"Failed to start {name}: Unit {other} not found.")
                    return 5
                continue
            if self.start(other, out, err) != 0:
                err.append(f"A dependency job for {name} failed. See 'journalctl -xe' for details.")
                return 1
        for other in unit.words("Unit", "Wants"):
            if self.unit(other, err) is not None:
                self.start(other, out, err)
        if unit.kind == "socket":
            return self.start_socket(unit, err)
        if unit.kind == "service":
            return self.start_service(unit, err)
        return 0

    def start_socket(self, unit, err):
        def fail(why):
            err.append(f"Job for {unit.name} failed.")
            err.append(f"systemctl shim: {unit.name}: {why}")
            for listener in unit.listeners:
                listener.close()
            unit.listeners = []
            self.set_state(unit, "failed", "failed")
            return 1

        try:
            owner = unit.get("Socket", "SocketUser", "root")
            group = unit.get("Socket", "SocketGroup", "root")
            uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
        except KeyError as error:
            return fail(f"Failed to resolve SocketUser=/SocketGroup=: {error}")
        mode = int(unit.get("Socket", "SocketMode", "0666"), 8)
        directory_mode = int(unit.get("Socket", "DirectoryMode", "0755"), 8)
        backlog = int(unit.get("Socket", "Backlog", str(socket.SOMAXCONN)))
        for path in unit.all("Socket", "ListenStream"):
            if not path.startswith("/"):
                return fail(f"ListenStream={path}: only Unix socket paths are emulated")
            folder = os.path.dirname(path)
            missing = []
            while not os.path.isdir(folder):
                missing.append(folder)
                folder = os.path.dirname(folder)
            for folder in reversed(missing):
                os.mkdir(folder, directory_mode)
                os.chmod(folder, directory_mode)
            if os.path.exists(path) and not os.path.isdir(path):
                os.unlink(path)  # systemd replaces a stale socket file
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o777 & ~mode)
            try:
                listener.bind(path)
            except OSError as error:
                return fail(f"Failed to create listening socket ({path}): {error}")
            finally:
                os.umask(old)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
            listener.listen(backlog)
            unit.listeners.append(listener)
        self.set_state(unit, "active", "listening")
        return 0

    def service_sockets(self, unit):
        names = unit.words("Service", "Sockets")
        same = unit.name.rsplit(".", 1)[0] + ".socket"
        if same not in names and same in self.units:
            names.append(same)
        fds, fdnames = [], []
        for name in names:
            socket_unit = self.units.get(name)
            if socket_unit is None or socket_unit.state != "active":
                continue
            for listener in socket_unit.listeners:
                fds.append(listener)
                fdnames.append(socket_unit.get("Socket", "FileDescriptorName", name))
        return fds, fdnames

    def start_service(self, unit, err):
        s = "Service"
        kind = unit.get(s, "Type", "simple")
        now = time.time()
        interval = seconds(unit.get("Unit", "StartLimitIntervalSec"), 10)
        burst = int(unit.get("Unit", "StartLimitBurst", "5"))
        unit.starts = [t for t in unit.starts if now - t < interval] + [now]
        if len(unit.starts) > burst:
            err.append(f"Job for {unit.name} failed.")
            err.append(f"systemctl shim: {unit.name}: Start request repeated too quickly (StartLimitBurst={burst} "
                       f"in {interval:g} s); the service stays down.")
            self.set_state(unit, "failed", "failed")
            return 1

        def fail(status, code, why, timed_out=False):
            """The start job fails; then Restart= decides (systemd: failed, then auto-restart)."""
            unit.result, unit.exit_code = status, code
            self.set_state(unit, "failed", "failed")
            err.append(f"Job for {unit.name} failed because the control process exited with error code.")
            err.append(f"See \"systemctl status {unit.name}\" and \"journalctl -xeu {unit.name}\" for details.")
            decision = self.restart_decision(unit, code, timed_out=timed_out,
                                             signal_name=status[7:] if status.startswith("signal=") else None)
            err.append(f"systemctl shim: {unit.name}: {why}; {decision}{self.log_tail(unit)}")
            return 1

        user = unit.get(s, "User", "root")
        try:
            entry = pwd.getpwnam(user)
            group = unit.get(s, "Group") or grp.getgrgid(entry.pw_gid).gr_name
            gid = grp.getgrnam(group).gr_gid
            groups = sorted(set(os.getgrouplist(user, gid)) | {grp.getgrnam(g).gr_gid for g in unit.words(s, "SupplementaryGroups")})
        except KeyError as error:
            return fail("status=217/USER", 217, f"Failed to determine user credentials: {error}")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "INVOCATION_ID": secrets.token_hex(16), "HOME": entry.pw_dir, "LOGNAME": user, "USER": user,
               "SHELL": entry.pw_shell}
        for key, folder_root, mode_key in (("RuntimeDirectory", "/run", "RuntimeDirectoryMode"),
                                           ("StateDirectory", "/var/lib", "StateDirectoryMode")):
            folders = [os.path.join(folder_root, n) for n in unit.words(s, key)]
            for folder in folders:
                os.makedirs(folder, exist_ok=True)
                os.chmod(folder, int(unit.get(s, mode_key, "0755"), 8))
                os.chown(folder, entry.pw_uid, gid)
            if folders:
                env[key.replace("Directory", "_DIRECTORY").upper()] = ":".join(folders)
        for assignment in unit.all(s, "Environment"):
            for word in shlex.split(assignment):
                if "=" in word:
                    k, v = word.split("=", 1)
                    env[k] = v
        for name in unit.all(s, "EnvironmentFile"):
            optional = name.startswith("-")
            name = name.lstrip("-")
            if not os.path.exists(name):
                if optional:
                    continue
                return fail("status=243/CREDENTIALS", 243, f"Failed to load environment files: {name}: No such file or directory")
            env.update(read_environment_file(name))
        env.update(self.extra_env)
        command = systemd_words(unit.get(s, "ExecStart", ""), env, unit)
        if not command:
            return fail("status=203/EXEC", 203, "no ExecStart=")
        ignore_failure = command[0].startswith("-")
        command[0] = command[0].lstrip("-@+!:")
        if not os.access(command[0], os.X_OK):
            return fail("status=203/EXEC", 203, f"Failed to execute {command[0]}: No such file or directory")
        listeners, fdnames = self.service_sockets(unit)
        high = [fcntl.fcntl(l.fileno(), fcntl.F_DUPFD_CLOEXEC, 200 + i) for i, l in enumerate(listeners)]
        boot = []
        if listeners:
            env["LISTEN_FDS"] = str(len(listeners))
            env["LISTEN_FDNAMES"] = ":".join(fdnames)
            boot.append("exec " + " ".join(f"{3 + i}<&{fd} {fd}<&-" for i, fd in enumerate(high)))
            boot.append("export LISTEN_PID=$$")
        unit.messages = []
        if kind == "notify":
            folder = os.path.join(self.work, "notify")
            os.makedirs(folder, mode=0o755, exist_ok=True)
            os.chmod(folder, 0o755)
            path = os.path.join(folder, unit.name)
            if os.path.exists(path):
                os.unlink(path)
            unit.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            unit.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            unit.notify.bind(path)
            os.chmod(path, 0o777)
            env["NOTIFY_SOCKET"] = path
            threading.Thread(target=self.listen_notify, args=(unit, unit.notify), daemon=True).start()
        if unit.get(s, "LimitNOFILE"):
            limit = unit.get(s, "LimitNOFILE").replace("infinity", "unlimited").split(":")[-1]
            # As far as this machine permits (a container may cap the hard limit even for root).
            boot.append(f"{{ ulimit -n {limit} 2>/dev/null || {{ echo \"systemctl shim: LimitNOFILE={limit} not permitted here, "
                        f"open files limited to $(ulimit -Hn)\"; ulimit -Sn $(ulimit -Hn); }}; }}")
        boot.append(f"umask {unit.get(s, 'UMask', '0022')}")
        privileges = []
        if user != "root" or unit.get(s, "Group"):
            privileges = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={gid}", f"--groups={','.join(map(str, groups))}"]
            if unit.get(s, "NoNewPrivileges", "no") in ("yes", "true", "1", "on"):
                privileges.append("--no-new-privs")
            privileges.append("--")
        boot.append('exec "$@"')
        unit.log_path = os.path.join(self.work, unit.name + ".log")
        log = open(unit.log_path, "ab")
        log.write(f"-- {time.strftime('%H:%M:%S')} systemctl shim: starting {' '.join(command)}\n".encode())
        log.flush()
        unit.process = subprocess.Popen(["/bin/bash", "-c", "; ".join(boot), "bash", *privileges, *command], env=env,
                                        pass_fds=high, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=unit.get(s, "WorkingDirectory", "/"), start_new_session=True)
        log.close()
        for fd in high:
            os.close(fd)
        process = unit.process
        unit.main_pid = process.pid
        unit.stopping = False
        unit.result = None
        self.set_state(unit, "activating", "start")
        threading.Thread(target=self.reap, args=(unit, process, ignore_failure), daemon=True).start()
        if kind != "notify":
            self.set_state(unit, "active", "running")
            return 0
        deadline = time.time() + seconds(unit.get(s, "TimeoutStartSec"), 90)
        while unit.state == "activating" and process.poll() is None and time.time() < deadline:
            if any(text_has(t, "READY=1") for _, t in unit.messages):
                self.set_state(unit, "active", "running")
                return 0
            self.changed.wait(0.2)
        if unit.state == "active":
            return 0
        if process.poll() is None:  # timed out
            self.kill(unit)
            return fail("timeout", None, f"start operation timed out (TimeoutStartSec={unit.get(s, 'TimeoutStartSec', '90')})",
                        timed_out=True)
        # The main process exited before READY=1 (reap() recorded how).
        self.wait_for(lambda: unit.result is not None, 5)
        return fail(unit.result or "exited", unit.exit_code, f"main process exited before READY=1, {unit.result}")

    def log_tail(self, unit, lines=5):
        if not unit.log_path or not os.path.exists(unit.log_path):
            return ""
        tail = open(unit.log_path, errors="replace").read().rstrip("\n").split("\n")[-lines:]
        return "\n" + "\n".join(f"  {unit.name} log: {line}" for line in tail)

    def restart_decision(self, unit, code, timed_out=False, signal_name=None):
        """Whether systemd would restart the service after this end; schedules it if so."""
        s = "Service"
        restart = unit.get(s, "Restart", "no")
        prevented = set(unit.words(s, "RestartPreventExitStatus"))
        success = code == 0 or (signal_name in ("SIGHUP", "SIGINT", "SIGTERM", "SIGPIPE"))
        if code is not None and str(code) in prevented or signal_name in prevented:
            return f"RestartPreventExitStatus={' '.join(sorted(prevented, key=lambda x: (len(x), x)))} names it: not restarted, the service stays down"
        wanted = {"no": False, "always": True, "on-success": success, "on-failure": not success,
                  "on-abnormal": timed_out or (signal_name is not None and not success),
                  "on-abort": signal_name is not None and not success, "on-watchdog": False}.get(restart, False)
        if not wanted or self.closed:
            return f"Restart={restart}: not restarted, the service stays down"
        delay = seconds(unit.get(s, "RestartSec"), 0.1)
        self.set_state(unit, "activating", "auto-restart")
        timer = threading.Timer(delay, self.auto_restart, args=(unit.name,))
        timer.daemon = True
        unit.restart_timer = timer
        timer.start()
        return f"Restart={restart}: systemd restarts it in {delay:g} s (StartLimitBurst permitting)"

    def auto_restart(self, name):
        with self.lock:
            unit = self.units.get(name)
            if self.closed or unit is None or unit.sub != "auto-restart":
                return
            unit.state, unit.sub = "inactive", "dead"
            out, err = [], []
            self.start(name, out, err, restarting=True)
            if unit.log_path:
                with open(unit.log_path, "a") as log:
                    for line in err:
                        log.write(f"-- systemctl shim (auto-restart): {line}\n")

    def listen_notify(self, unit, sock):
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except OSError:
                return
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            text = data.decode(errors="replace")
            with self.lock:
                if unit.notify is not sock:
                    return
                if unit.get("Service", "NotifyAccess", "main") == "main" and pid != unit.main_pid:
                    self.note(unit, f"Got notification message from PID {pid}, but reception only permitted for main PID {unit.main_pid}")
                    continue
                unit.messages.append((pid, text))
                for line in text.split("\n"):
                    if line.startswith("MAINPID="):
                        unit.main_pid = int(line[8:])
                self.changed.notify_all()

    def note(self, unit, text):
        if unit.log_path:
            with open(unit.log_path, "a") as log:
                log.write(f"-- systemctl shim: {text}\n")

    def reap(self, unit, process, ignore_failure):
        code = process.wait()
        with self.lock:
            if unit.process is not process:
                return
            signal_name = None
            if code < 0:
                signal_name = signal.Signals(-code).name
                unit.result, unit.exit_code = f"signal={signal_name}", None
            else:
                unit.result, unit.exit_code = f"status={code}/{SYSEXITS.get(code, code)}", code
            self.note(unit, f"main process exited, code={'killed' if code < 0 else 'exited'}, {unit.result}")
            unit.process = None
            if unit.notify:
                unit.notify.close()
                unit.notify = None
            # What is left of the process group (KillMode=mixed/control-group): SIGKILL.
            if unit.get("Service", "KillMode", "control-group") != "process":
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    pass
            if unit.stopping or unit.state == "activating":
                self.changed.notify_all()  # stop() or start() decides
                return
            if ignore_failure:
                code = 0
            if code == 0:
                self.set_state(unit, "inactive", "dead")
                return
            self.set_state(unit, "failed", "failed")
            self.note(unit, "the service ended while running: " + self.restart_decision(unit, unit.exit_code, signal_name=signal_name))

    def wait_for(self, predicate, timeout):
        deadline = time.time() + timeout
        while not predicate() and time.time() < deadline:
            self.changed.wait(0.1)
        return predicate()

    # -- reload, stop

    def reload(self, name, err):
        unit = self.unit(name, err)
        if unit is None:
            err.append(f"Failed to reload {name}: Unit {name} not found.")
            return 5
        if unit.state != "active":
            err.append(f"{name} is not active, cannot reload.")
            return 1
        command = unit.get("Service", "ExecReload")
        if not command:
            err.append(f"Failed to reload {name}: Job type reload is not applicable for unit {name}.")
            return 1
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "MAINPID": str(unit.main_pid)}
        heard = len(unit.messages)
        unit.reloads += 1
        self.set_state(unit, "reloading", "reload")
        words = systemd_words(command, env, unit)
        done = subprocess.run([w.lstrip("-@+!:") if i == 0 else w for i, w in enumerate(words)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            self.set_state(unit, "active", "running")
            err.append(f"Job for {name} failed because the control process exited with error code.")
            err.append(f"systemctl shim: ExecReload exited {done.returncode}: {done.stdout}{done.stderr}")
            return 1
        if unit.get("Service", "Type") == "notify":
            deadline = time.time() + seconds(unit.get("Service", "TimeoutStartSec"), 90)
            while unit.process is not None and time.time() < deadline:
                if any(text_has(t, "READY=1") for _, t in unit.messages[heard:]):
                    break
                self.changed.wait(0.2)
            else:
                if unit.process is not None:
                    self.set_state(unit, "active", "running")  # else reap() decided
                err.append(f"Job for {name} failed.")
                err.append(f"systemctl shim: {name}: no READY=1 after the reload (the process "
                           f"{'exited, ' + str(unit.result) if unit.process is None else 'still runs'})" + self.log_tail(unit))
                return 1
        self.set_state(unit, "active", "running")
        return 0

    def kill(self, unit):
        process = unit.process
        if process is None:
            return
        unit.stopping = True
        kill_signal = getattr(signal, unit.get("Service", "KillSignal", "SIGTERM"))
        mode = unit.get("Service", "KillMode", "control-group")
        try:
            if mode == "control-group":
                os.killpg(process.pid, kill_signal)
            else:
                process.send_signal(kill_signal)
        except OSError:
            pass
        if not self.wait_for(lambda: unit.process is None, seconds(unit.get("Service", "TimeoutStopSec"), 90)):
            self.note(unit, "stop timed out: SIGKILL")
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.wait_for(lambda: unit.process is None, 10)

    def stop(self, name, err):
        unit = self.unit(name, err)
        if unit is None:
            err.append(f"Failed to stop {name}: Unit {name} not loaded.")
            return 5
        if unit.restart_timer:
            unit.restart_timer.cancel()
            unit.restart_timer = None
        if unit.kind == "socket":
            for listener in unit.listeners:
                listener.close()
            if unit.get("Socket", "RemoveOnStop", "no") in ("yes", "true", "1", "on"):
                for path in unit.all("Socket", "ListenStream"):
                    if os.path.exists(path):
                        os.unlink(path)
            unit.listeners = []
            self.set_state(unit, "inactive", "dead")
            return 0
        if unit.process is not None:
            self.set_state(unit, "deactivating", "stop-sigterm")
            self.kill(unit)
        unit.stopping = False
        if unit.get("Service", "RuntimeDirectoryPreserve", "no") not in ("yes", "restart"):
            for n in unit.words("Service", "RuntimeDirectory"):
                shutil.rmtree(os.path.join("/run", n), ignore_errors=True)
        clean = unit.exit_code in (0, None) and (unit.result is None or "signal=SIGTERM" in unit.result or unit.exit_code == 0)
        self.set_state(unit, "inactive" if clean else "failed", "dead" if clean else "failed")
        return 0

    def status(self, name, out):
        unit = self.units.get(name)
        if unit is None:
            out.append(f"Unit {name} could not be found.")
            return 4
        since = time.strftime("%a %Y-%m-%d %H:%M:%S", time.localtime(unit.since)) if unit.since else ""
        out.append(f"● {name} - {unit.get('Unit', 'Description', name)}")
        out.append(f"     Loaded: loaded ({unit.path}; {'enabled' if unit.enabled else 'disabled'})")
        extra = f" ({unit.result})" if unit.state == "failed" and unit.result else ""
        out.append(f"     Active: {unit.state} ({unit.sub}){extra} since {since}")
        if unit.kind == "socket":
            for path in unit.all("Socket", "ListenStream"):
                out.append(f"     Listen: {path} (Stream)")
        elif unit.process is not None:
            out.append(f"   Main PID: {unit.main_pid}")
        if unit.kind == "service" and unit.messages:
            status = [l[7:] for _, t in unit.messages for l in t.split("\n") if l.startswith("STATUS=")]
            if status:
                out.append(f"     Status: \"{status[-1]}\"")
        if unit.log_path and os.path.exists(unit.log_path):
            out.append("")
            out.extend(open(unit.log_path, errors="replace").read().rstrip("\n").split("\n")[-10:])
        return 0 if unit.state == "active" else 3

    def shutdown(self):
        """Stops every service, then every socket (the check's end)."""
        with self.lock:
            self.closed = True
            for unit in list(self.units.values()):
                if unit.restart_timer:
                    unit.restart_timer.cancel()
            for unit in [u for u in self.units.values() if u.kind == "service"]:
                self.stop(unit.name, [])
            for unit in [u for u in self.units.values() if u.kind == "socket"]:
                self.stop(unit.name, [])
        self.server.close()


def read_line(connection):
    """Bytes from a socket up to a newline (or its end): one message between the shim and the manager."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def text_has(text, line):
    return line in text.split("\n")


def shim(tool, control, argv):
    """The systemctl/journalctl shim: asks the manager of check-recipes.py."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(control)
    except OSError as error:
        print(f"{tool} shim: the check's manager is not running ({error})", file=sys.stderr)
        return 1
    connection.sendall(json.dumps({"tool": tool, "argv": argv}).encode() + b"\n")
    reply = json.loads(read_line(connection))
    sys.stdout.write(reply["out"])
    sys.stderr.write(reply["err"])
    return reply["code"]


# ---------------------------------------------------------------- helpers

class Problems(list):
    def fail(self, text):
        self.append(text)
        print(f"  FAILED: {text}", flush=True)


def pg_bindir():
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if d and os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    except OSError:
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", p.split("/")[-2]) or 0))
    if not found:
        raise SystemExit("no PostgreSQL server binaries (initdb) found")
    return found[-1]


def repo_view(work, bindir, build_dirs):
    """A folder that looks like the repository, with .build/<dir> linking to BINDIR."""
    view = os.path.join(work, "repo")
    os.makedirs(os.path.join(view, ".build"))
    for entry in os.listdir(REPO):
        if entry != ".build":
            os.symlink(os.path.join(REPO, entry), os.path.join(view, entry))
    for name in build_dirs:
        os.symlink(bindir, os.path.join(view, ".build", name))
    return view


def socket_answers(path):
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2)
        probe.connect(path)
        probe.close()
        return True
    except OSError:
        return False


def run_streaming(command, prefix, **kwargs):
    """Runs a command, echoing its output with a prefix; returns (code, output)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", **kwargs)
    lines = []
    for line in process.stdout:
        lines.append(line)
        print(prefix + line.rstrip("\n"), flush=True)
    return process.wait(), "".join(lines)


# ---------------------------------------------------------------- systemd

def check_systemd(bindir, markdown, name, problems):
    print(f"systemd: {os.path.relpath(markdown, REPO)}, blocks <!-- run: {name} -->", flush=True)
    units = os.path.join(REPO, "Deploy", "systemd")
    unit_names = ["portierd.service", "portierd.socket", "portierd-support.socket"]
    work = tempfile.mkdtemp(prefix="portier-recipes-")
    os.chmod(work, 0o755)
    try:
        # 1. systemd-analyze verify, on copies whose ExecStart names the binary under test.
        if shutil.which("systemd-analyze"):
            copies = os.path.join(work, "units")
            os.makedirs(copies)
            for n in unit_names:
                text = open(os.path.join(units, n)).read().replace("/usr/local/bin/portierd", os.path.join(bindir, "portierd"))
                open(os.path.join(copies, n), "w").write(text)
            done = subprocess.run(["systemd-analyze", "verify", *[os.path.join(copies, n) for n in unit_names]],
                                  capture_output=True, text=True)
            if done.returncode != 0 or done.stderr.strip():
                problems.fail(f"systemd-analyze verify: {done.stdout}{done.stderr}")
            else:
                print("  ok: systemd-analyze verify (service and both sockets)")
        else:
            print("  skipped: systemd-analyze not installed")
        if os.geteuid() != 0:
            print("  skipped: needs root (running the recipe)")
            return
        blocks = extract(markdown, name)
        if not blocks:
            problems.fail(f"{markdown} has no blocks marked <!-- run: {name} -->")
            return
        left = [p for p in INSTALLED if os.path.lexists(p)]
        if left:
            problems.fail("the recipe would install over what is there (left by an interrupted run?): "
                          + ", ".join(left) + "; remove them first")
            return
        run_systemd_recipe(bindir, markdown, blocks, work, problems)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def start_cluster(work, problems):
    """A PostgreSQL cluster with only the superuser postgres, peer authentication,
    its socket in /run/postgresql. Returns (stop function, extra environment)."""
    bindir = pg_bindir()
    data = os.path.join(work, "pg")
    os.makedirs(data)
    subprocess.run(["chown", "postgres:", data], check=True)
    os.chmod(data, 0o700)
    made_run = not os.path.isdir("/run/postgresql")
    if made_run:
        os.makedirs("/run/postgresql")
        subprocess.run(["chown", "postgres:postgres", "/run/postgresql"], check=True)
        os.chmod("/run/postgresql", 0o2775)
    port, extra = 5432, {}
    while socket_answers(f"/run/postgresql/.s.PGSQL.{port}"):
        port += 1
    if port != 5432:
        extra["PGPORT"] = str(port)
        print(f"  note: a PostgreSQL already listens at /run/postgresql port 5432: the throwaway cluster uses port {port}, "
              f"and PGPORT={port} is in the recipe's and the services' environment (the recipe's text is unchanged)")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    done = subprocess.run(as_postgres + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth-local=peer",
                                         "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
                          capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"initdb failed: {done.stdout}{done.stderr}")
    log = os.path.join(work, "pg.log")
    open(log, "w").close()
    subprocess.run(["chown", "postgres:", log], check=True)
    done = subprocess.run(as_postgres + [os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", "-o",
                                         f"-c listen_addresses='' -k /run/postgresql -p {port} -c fsync=off "
                                         "-c synchronous_commit=off -c full_page_writes=off", "start"],
                          capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"PostgreSQL did not start: {done.stdout}{done.stderr}{open(log).read()}")
    print(f"  PostgreSQL {os.path.basename(os.path.dirname(bindir))}: a fresh cluster with only the superuser postgres "
          f"(peer authentication), socket /run/postgresql port {port}")

    def stop():
        subprocess.run(as_postgres + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, cwd="/")
        shutil.rmtree(data, ignore_errors=True)
        if made_run:
            shutil.rmtree("/run/postgresql", ignore_errors=True)

    return stop, extra


def run_systemd_recipe(bindir, markdown, blocks, work, problems):
    stop_cluster, extra = lambda: None, {}
    manager = None
    try:
        stop_cluster, extra = start_cluster(work, problems)
        view = repo_view(work, bindir, ["release"])
        shims = os.path.join(work, "bin")
        os.makedirs(shims)
        manager = Manager(work, extra)
        for tool in ("systemctl", "journalctl"):
            path = os.path.join(shims, tool)
            with open(path, "w") as f:
                f.write(f"#!/bin/sh\nexec python3 {shlex.quote(SELF)} --shim {tool} {shlex.quote(manager.control_path)} \"$@\"\n")
            os.chmod(path, 0o755)
        script, where = script_of(blocks, markdown, ["set -euo pipefail",
                                                     "trap 'echo \"recipe: line $LINENO failed (exit $?)\" >&2' ERR"])
        path = os.path.join(work, "recipe.sh")
        open(path, "w").write(script)
        env = {"PATH": f"{shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root", **extra}
        print(f"  running {len(blocks)} blocks ({sum(b.count(chr(10)) for _, b in blocks)} lines) as root in a copy of the "
              f"repository whose .build/release is {bindir}", flush=True)
        code, output = run_streaming(["/bin/bash", path], "  | ", env=env, cwd=view)
        if code != 0:
            m = re.search(r"recipe: line (\d+) failed \(exit (\d+)\)", output)
            line = where.get(int(m.group(1)), "?") if m else "?"
            text = script.split("\n")[int(m.group(1)) - 1].strip() if m else ""
            problems.fail(f"the recipe failed at {line} (exit {code}): {text}")
            for unit in manager.units.values():
                if unit.kind == "service" and unit.log_path:
                    print(f"  {unit.name}: {unit.state} ({unit.result or 'running'}); its log:")
                    for l in open(unit.log_path, errors="replace").read().rstrip("\n").split("\n")[-15:]:
                        print(f"    {l}")
            return
        print("  ok: the recipe ran to its end")
        verify_left_running(manager, problems)
    finally:
        if manager:
            manager.shutdown()
        stop_cluster()
        for path in INSTALLED:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)
        print("  cleaned up: the cluster, " + ", ".join(INSTALLED))


def verify_left_running(manager, problems):
    """The recipe must leave what it started running, serving; a stop must be clean."""
    time.sleep(1)  # a service that dies right after its start shows here
    with manager.lock:
        started = [manager.units[n] for n in manager.started_by_recipe if n in manager.units]
        down = [u for u in started if u.state != "active"]
    for unit in down:
        problems.fail(f"the recipe leaves {unit.name} down: {unit.state} ({unit.result}){manager.log_tail(unit, 10)}")
    services = [u for u in started if u.kind == "service"]
    if not services:
        problems.fail("the recipe starts no service")
    if down or not services:
        return
    for unit in services:
        print(f"  ok: {unit.name} active, main PID {unit.main_pid}")
    # A client of the service socket's group is answered (systemd's socket, portierd behind it).
    service_socket = manager.units.get("portierd.socket")
    if service_socket:
        path = service_socket.get("Socket", "ListenStream")
        group = service_socket.get("Socket", "SocketGroup")
        probe = ("import json,socket,struct,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                 "b=json.dumps({'id':1,'op':'ping'}).encode(); s.sendall(struct.pack('>I',len(b))+b); "
                 "n=struct.unpack('>I',s.recv(4,socket.MSG_WAITALL))[0]; print(json.loads(s.recv(n,socket.MSG_WAITALL))['ok'])")
        answer = subprocess.run(["runuser", "-u", "nobody", "-g", group, "--", "python3", "-c", probe, path],
                                capture_output=True, text=True, timeout=30, cwd="/")
        if answer.stdout.strip() != "True":
            problems.fail(f"a client in {group} was not answered on {path}: {answer.stdout}{answer.stderr}")
        else:
            print(f"  ok: a client in {group} is answered on {path}")
    for unit in services:
        log = open(unit.log_path, errors="replace").read()
        bad = [l for l in log.split("\n") if " critical " in l or "reload refused" in l]
        if bad:
            problems.fail(f"{unit.name} logged: " + "\n".join(bad[-5:]))
        reloaded = [l for l in log.split("\n") if "reload" in l and "systemctl shim" not in l]
        if unit.reloads:
            if reloaded:
                print(f"  ok: {unit.reloads} reload(s) of {unit.name}, READY=1 again; its log: {reloaded[-1].strip()}")
            else:
                problems.fail(f"{unit.name} was reloaded but logged nothing about it")
        # A stop: STOPPING=1, exit 0, the socket units' sockets left in place.
        with manager.lock:
            heard = len(unit.messages)
            manager.stop(unit.name, [])
            said = [t for _, t in unit.messages[heard:]]
            result = unit.result
        if not any(text_has(t, "STOPPING=1") for t in said) or result != "status=0/SUCCESS":
            problems.fail(f"systemctl stop {unit.name}: heard {said}, ended {result}")
        else:
            print(f"  ok: systemctl stop {unit.name}: STOPPING=1, exit 0")
        for name in unit.words("Service", "Sockets"):
            for path in manager.units[name].all("Socket", "ListenStream"):
                if not os.path.exists(path):
                    problems.fail(f"portierd removed {path}, which belongs to {name}")
                else:
                    print(f"  ok: {path} left to {name}")


# ---------------------------------------------------------------- compose

def check_compose(problems):
    compose_path = os.path.join(REPO, "Deploy", "compose", "compose.yaml")
    folder = os.path.dirname(compose_path)
    print(f"compose: {os.path.relpath(compose_path, REPO)} parsed, its files present (no container runtime here: "
          "neither built nor run)", flush=True)
    text = open(compose_path).read()
    try:
        import yaml
    except ImportError:
        yaml = None
    builds = []
    if yaml:
        doc = yaml.safe_load(text)
        services = doc.get("services") or {}
        if not services:
            problems.fail("compose.yaml: no services")
        volumes = set((doc.get("volumes") or {}).keys())
        for name, service in services.items():
            if not isinstance(service, dict) or not (service.get("image") or service.get("build")):
                problems.fail(f"compose.yaml: service {name} has neither image nor build")
                continue
            build = service.get("build")
            if isinstance(build, str):
                build = {"context": build}
            if build:
                builds.append((name, build.get("context", "."), build.get("dockerfile", "Dockerfile")))
            deps = service.get("depends_on") or []
            for dep in (deps.keys() if isinstance(deps, dict) else deps):
                if dep not in services:
                    problems.fail(f"compose.yaml: {name} depends on {dep}, which is not a service")
            for volume in service.get("volumes") or []:
                if isinstance(volume, dict):
                    source, bind = volume.get("source") or "", volume.get("type") == "bind"
                elif ":" in volume:
                    source = volume.split(":")[0]
                    bind = source.startswith((".", "/", "~"))
                else:
                    continue  # an anonymous volume
                if bind:
                    if not os.path.exists(os.path.join(folder, os.path.expanduser(source))):
                        problems.fail(f"compose.yaml: {name} mounts {source}, which does not exist")
                elif source and source not in volumes:
                    problems.fail(f"compose.yaml: {name} uses the volume {source}, not declared under volumes:")
            for env_file in ([service["env_file"]] if isinstance(service.get("env_file"), str) else service.get("env_file") or []):
                if not os.path.exists(os.path.join(folder, env_file)):
                    problems.fail(f"compose.yaml: {name} reads {env_file}, which does not exist")
        print(f"  ok: parsed with PyYAML: {len(services)} services ({', '.join(services)})")
    else:
        contexts = re.findall(r"^\s*context:\s*(\S+)", text, re.M)
        files = re.findall(r"^\s*dockerfile:\s*(\S+)", text, re.M)
        builds = [("a build", c, d) for c, d in zip(contexts, files)]
        print("  (PyYAML is not installed: build contexts and Containerfiles only)")
    seen = set()
    for name, context, dockerfile in builds:
        if (context, dockerfile) in seen:
            continue
        seen.add((context, dockerfile))
        root = os.path.normpath(os.path.join(folder, context))
        if not os.path.isdir(root):
            problems.fail(f"compose.yaml: {name}'s build context {context} is not a folder")
            continue
        path = os.path.join(root, dockerfile)
        if not os.path.isfile(path):
            problems.fail(f"compose.yaml: {name}'s {dockerfile} does not exist")
            continue
        stages, copied = set(), 0
        for line in open(path).read().replace("\\\n", " ").split("\n"):
            words = line.split()
            if not words:
                continue
            if words[0].upper() == "FROM" and len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3])
            if words[0].upper() in ("COPY", "ADD"):
                flags = [w for w in words[1:] if w.startswith("--")]
                paths = [w for w in words[1:] if not w.startswith("--")]
                stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
                if stage is not None:
                    if stage not in stages:
                        problems.fail(f"{dockerfile}: COPY --from={stage}: no such stage")
                    continue
                for source in paths[:-1]:
                    if not glob.glob(os.path.join(root, source)):
                        problems.fail(f"{dockerfile}: {line.strip()}: {source} does not exist in {os.path.relpath(root, REPO) or '.'}")
                    copied += 1
        print(f"  ok: {name}: context {os.path.relpath(root, REPO) if root != REPO else 'the repository'}, {dockerfile} "
              f"({copied} copied paths present)")


# ---------------------------------------------------------------- README

def commands_of(blocks, path):
    """The blocks split into complete commands: [(document line, text)], comment-only lines left out."""
    commands = []
    for first, block in blocks:
        chunk, start = [], None
        for k, line in enumerate(block.rstrip("\n").split("\n")):
            if not chunk and (not line.strip() or line.strip().startswith("#")):
                continue
            if not chunk:
                start = first + k
            chunk.append(line)
            text = "\n".join(chunk)
            if re.search(r"(^|[^\\])(\\\\)*\\$", line):
                continue  # a continuation line
            check = subprocess.run(["bash", "-n"], input=text + "\n", capture_output=True, text=True)
            if check.returncode != 0 and re.search(r"unexpected (end of file|EOF)", check.stderr):
                continue
            commands.append((f"{os.path.relpath(path, REPO)}:{start}", text))
            chunk = []
        if chunk:
            commands.append((f"{os.path.relpath(path, REPO)}:{start}", "\n".join(chunk)))
    return commands


def refused(text):
    """None, or the error code a `# refused: CODE` comment names ("" when it names none)."""
    last = text.rstrip("\n").split("\n")[-1]
    m = re.search(r"\s#\s*refused\b(?::\s*([a-z][a-z0-9_]*)\b)?", last)
    return None if m is None else (m.group(1) or "")


def check_readme(bindir, markdown, problems, keep_going=False, verbose=False):
    print(f"readme: {os.path.relpath(markdown, REPO)}, blocks <!-- run: readme-two-commands --> (the server) and "
          "<!-- run: readme-walkthrough -->", flush=True)
    two = extract(markdown, "readme-two-commands")
    walk = extract(markdown, "readme-walkthrough")
    if not two or not walk:
        problems.fail(f"{os.path.relpath(markdown, REPO)} has no blocks marked "
                      + " and ".join(n for n, b in (("<!-- run: readme-two-commands -->", two), ("<!-- run: readme-walkthrough -->", walk)) if not b))
        return
    first = commands_of(two, markdown)[0][1]
    first = re.sub(r"\s+#.*$", "", first).strip()
    if not first.startswith("bash Scripts/run-server.sh"):
        problems.fail(f"the two commands' first line is not `bash Scripts/run-server.sh …`: {first}")
        return
    work = tempfile.mkdtemp(prefix="portier-readme-")
    os.chmod(work, 0o755)
    server = None
    try:
        view = repo_view(work, bindir, ["debug", "release"])
        state = os.path.join(work, "state")
        os.makedirs(state, mode=0o755)
        os.chmod(state, 0o755)
        server_log = open(os.path.join(work, "server.log"), "wb")
        command = f"{first} --state-dir {shlex.quote(state)}"
        print(f"  server: {command} (PORTIER_BUILD=debug: {bindir})", flush=True)
        server = subprocess.Popen(["bash", "-c", command], cwd=view, env=dict(os.environ, PORTIER_BUILD="debug"),
                                  stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
        service = os.path.join(state, "portier.sock")
        deadline = time.time() + 180
        while not socket_answers(service):
            if server.poll() is not None or time.time() > deadline:
                problems.fail(f"the server did not come up (exit {server.poll()}):\n" + open(server_log.name, errors="replace").read()[-3000:])
                return
            time.sleep(0.2)
        print(f"  ok: the server answers on {service}")
        run_walkthrough(bindir, markdown, walk, work, service, problems, keep_going, verbose, state)
        # The load generator's documented first run, against the same server: it must end with no error.
        performance = os.path.join(REPO, "docs", "performance.md")
        load = extract(performance, "load-first-run")
        if not load:
            problems.fail("docs/performance.md has no block marked <!-- run: load-first-run -->")
        else:
            print("load: docs/performance.md, blocks <!-- run: load-first-run --> against the same server", flush=True)
            run_walkthrough(bindir, performance, load, work, service, problems, keep_going, verbose, state, folder="load")
    finally:
        if server is not None and server.poll() is None:
            # SIGTERM to portierd alone (run-server.sh execs it): it stops its embedded cluster itself.
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(timeout=60)
                if code != 0:
                    problems.fail(f"the server exited {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                problems.fail("the server did not stop within 60 s of SIGTERM")
        if server is not None:
            try:
                os.killpg(server.pid, signal.SIGKILL)  # anything left in its process group
            except OSError:
                pass
        # The embedded cluster runs as postgres when root; the server stops it. Whatever is left goes with the folder.
        shutil.rmtree(work, ignore_errors=True)


def run_walkthrough(bindir, markdown, blocks, work, service, problems, keep_going, verbose, state, folder="walkthrough"):
    commands = commands_of(blocks, markdown)
    mark = "\x1e"
    script = ["set -euo pipefail"]
    for i, (_, text) in enumerate(commands):
        script.append(f"printf '{mark}%s\\n' {i}")
        if refused(text) is not None or keep_going:
            script += ["set +e", text, "__rc=$?", "set -e", f"printf '{mark}rc %s\\n' \"$__rc\""]
        else:
            script.append(text)
    script.append(f"printf '{mark}end\\n'")
    cwd = os.path.join(work, folder)
    os.makedirs(cwd)
    # The server's state folder is not ./.portier here: the variables every tool reads say where it is.
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", PORTIER_SOCKET=service, PORTIER_STATE_DIR=state)
    env.pop("PORTIER_SUPPORT_SOCKET", None)
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", timeout=600)
    # The output, per command.
    outputs, codes, current, finished = {}, {}, None, False
    for line in done.stdout.split("\n"):
        if line.startswith(mark):
            word = line[1:]
            if word == "end":
                finished = True
            elif word.startswith("rc "):
                codes[current] = int(word[3:])
            else:
                current = int(word)
                outputs[current] = []
        elif current is not None:
            outputs[current].append(line)
    ran = len(outputs)
    refusals = 0
    for i, (where, text) in enumerate(commands):
        if i not in outputs:
            break
        output = "\n".join(outputs[i]).rstrip("\n")
        if verbose:
            print(f"  {where}: {text}\n" + indent(output))
        code = refused(text)
        if code is not None:
            refusals += 1
            if codes.get(i) != 2:
                problems.fail(f"{where}: expected a refusal (exit 2), got exit {codes.get(i)}:\n    {text}\n"
                              + indent(output))
            elif code and code not in output:
                problems.fail(f"{where}: refused, but not with {code}:\n    {text}\n" + indent(output))
        elif i in codes and codes[i] != 0:
            problems.fail(f"{where}: exit {codes[i]}:\n    {text}\n" + indent(output))
        elif not finished and i == ran - 1 and i not in codes:
            problems.fail(f"{where}: exit {done.returncode}:\n    {text}\n" + indent(output))
    if finished:
        print(f"  ran {len(commands)} commands of {len(blocks)} blocks ({refusals} marked # refused)")
    else:
        print(f"  stopped after {ran} of {len(commands)} commands")


def indent(text):
    return "\n".join("      " + l for l in text.split("\n")[-30:])


# ---------------------------------------------------------------- main

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--shim":
        sys.exit(shim(sys.argv[2], sys.argv[3], sys.argv[4:]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["all", "systemd", "compose", "readme"])
    parser.add_argument("bindir", nargs="?", help="the folder with portierd and portier")
    parser.add_argument("--markdown", help="the document (default Deploy/README.md for systemd, README.md for readme)")
    parser.add_argument("--name", default="systemd", help="the systemd recipe's block name (default systemd)")
    parser.add_argument("--keep-going", action="store_true", help="readme: report every failing command, not only the first")
    parser.add_argument("--verbose", action="store_true", help="readme: print every command and its output")
    args = parser.parse_args()
    if args.what != "compose" and not args.bindir:
        parser.error("BINDIR is needed")
    bindir = os.path.abspath(args.bindir) if args.bindir else None
    if bindir:
        for exe in ("portierd", "portier"):
            if not os.access(os.path.join(bindir, exe), os.X_OK):
                raise SystemExit(f"{bindir}/{exe} is missing")
    # A SIGTERM (a test runner's timeout) still cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    problems = Problems()
    if args.what in ("all", "compose"):
        check_compose(problems)
    if args.markdown and args.what == "all":
        parser.error("--markdown goes with systemd or readme")
    own = os.path.abspath(args.markdown) if args.markdown else None
    if args.what in ("all", "readme"):
        check_readme(bindir, own or os.path.join(REPO, "README.md"), problems, args.keep_going, args.verbose)
    if args.what in ("all", "systemd"):
        check_systemd(bindir, own or os.path.join(REPO, "Deploy", "README.md"), args.name, problems)
    if problems:
        print(f"\n{len(problems)} recipe problem(s):", file=sys.stderr)
        for p in problems:
            print("- " + p, file=sys.stderr)
        sys.exit(1)
    print("recipes: the documents run as written")


if __name__ == "__main__":
    main()
