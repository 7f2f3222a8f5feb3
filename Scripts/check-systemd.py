#!/usr/bin/env python3
"""Deploy/systemd checked as systemd would run it (issue 16).

1. `systemd-analyze verify` on the service and its two socket units (with
   ExecStart pointing at the binary under test).
2. As root: does what systemd does with the units, then runs the unit's own
   ExecStart line: the sockets of the .socket units (path, mode, owner,
   group) in a runtime folder, the User=, Group= and SupplementaryGroups= of
   the service (runuser), LISTEN_FDS/LISTEN_FDNAMES from FileDescriptorName=,
   and a NOTIFY_SOCKET that must hear READY=1 and, at SIGTERM, STOPPING=1.
   A client in the clients' group is answered; SIGTERM ends it with 0 and
   leaves the sockets (systemd's) in place.

Usage: check-systemd.py PORTIERD DATABASE_URL WORK_DIR
"""
import configparser
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

portierd, database_url, work = sys.argv[1], sys.argv[2], sys.argv[3]
units = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Deploy", "systemd")
problems = []
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
if os.geteuid() == 0:
    # The unit's user must reach its folders: every parent of WORK_DIR must be
    # searchable (a mktemp folder is 0700), so work in a folder of our own.
    import tempfile
    work = tempfile.mkdtemp(prefix="portier-systemd-", dir="/tmp")
    os.chmod(work, 0o755)


def unit(name):
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read(os.path.join(units, name))
    return parser


service = unit("portierd.service")
sockets = {name: unit(name) for name in ("portierd.socket", "portierd-support.socket")}

# 1. systemd-analyze verify, on copies whose ExecStart names the binary under test.
if shutil.which("systemd-analyze"):
    copies = os.path.join(work, "units")
    os.makedirs(copies)
    for name in ["portierd.service", *sockets]:
        text = open(os.path.join(units, name)).read().replace("/usr/local/bin/portierd", portierd)
        open(os.path.join(copies, name), "w").write(text)
    done = subprocess.run(["systemd-analyze", "verify", *[os.path.join(copies, n) for n in ["portierd.service", *sockets]]],
                          capture_output=True, text=True)
    if done.returncode != 0 or done.stderr.strip():
        problems.append(f"systemd-analyze verify: {done.stdout}{done.stderr}")
    else:
        print("  ok: systemd-analyze verify (service and both sockets)")
else:
    print("  skipped: systemd-analyze not installed")

# 2. The unit's command line as its user, with its sockets and groups.
if os.geteuid() != 0:
    print("  skipped: running the unit as its user (needs root)")
else:
    s = service["Service"]
    user, group = s["User"], s["Group"]
    supplementary = s.get("SupplementaryGroups", "").split()
    for g in [group, *supplementary, *[u["Socket"]["SocketGroup"] for u in sockets.values()]]:
        if subprocess.run(["getent", "group", g], capture_output=True).returncode != 0:
            subprocess.run(["groupadd", "--system", g], check=True)
    if subprocess.run(["getent", "passwd", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--gid", group, "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", user], check=True)
    uid = pwd.getpwnam(user).pw_uid
    runtime, state = os.path.join(work, "run"), os.path.join(work, "state")
    for folder in (runtime, state):
        os.makedirs(folder)
        os.chown(folder, uid, grp.getgrnam(group).gr_gid)
    os.chmod(work, 0o755)
    # The sockets, as the socket units make them, at descriptors 3, 4.
    names = []
    held = []  # the socket objects stay alive: their descriptors must not close
    for fd, (name, u) in enumerate(sockets.items(), start=3):
        sk = u["Socket"]
        path = os.path.join(runtime, os.path.basename(sk["ListenStream"]))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        held.append(listener)
        listener.bind(path)
        listener.listen(int(sk.get("Backlog", "128")))
        os.chown(path, pwd.getpwnam(sk["SocketUser"]).pw_uid, grp.getgrnam(sk["SocketGroup"]).gr_gid)
        os.chmod(path, int(sk["SocketMode"], 8))
        if listener.fileno() != fd:
            os.dup2(listener.fileno(), fd)
        os.set_inheritable(fd, True)
        names.append(sk["FileDescriptorName"])
    service_path = os.path.join(runtime, "portier.sock")
    notify_path = os.path.join(work, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    os.chmod(notify_path, 0o777)
    notify.settimeout(60)
    # The unit's paths, moved into this check's folder: /run/portier (the sockets) and the state folder.
    command = s["ExecStart"].replace("/usr/local/bin/portierd", portierd).replace("${STATE_DIRECTORY}", state) \
        .replace("/run/portier", runtime).replace("$PORTIERD_OPTIONS", "").split()
    env = {"PATH": "/usr/bin:/bin", "LISTEN_FDS": str(len(names)), "LISTEN_FDNAMES": ":".join(names), "NOTIFY_SOCKET": notify_path,
           "PORTIER_DATABASE_URL": database_url, "PORTIER_LOG_LEVEL": "notice"}
    # setpriv execs (runuser would fork and stand between us and portierd's exit code).
    runuser = ["setpriv", f"--reuid={user}", f"--regid={group}", f"--groups={','.join(supplementary) or group}", "--"]
    shell = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"']
    log = open(os.path.join(work, "portierd.log"), "wb")
    process = subprocess.Popen(runuser + ["env"] + [f"{k}={v}" for k, v in env.items()] + shell + command,
                               pass_fds=(3, 4), stdout=log, stderr=subprocess.STDOUT, env={})
    heard = []
    try:
        while "READY=1" not in "\n".join(heard):
            heard.append(notify.recv(4096).decode())
        print(f"  ok: the unit's command line as {user} ({group}, +{','.join(supplementary)}) said READY=1")
        # A client of the clients' group (the socket is 0660 portier:portier-clients).
        clients_group = sockets["portierd.socket"]["Socket"]["SocketGroup"]
        probe = ("import json,socket,struct,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                 "b=json.dumps({'id':1,'op':'ping'}).encode(); s.sendall(struct.pack('>I',len(b))+b); "
                 "n=struct.unpack('>I',s.recv(4,socket.MSG_WAITALL))[0]; print(json.loads(s.recv(n,socket.MSG_WAITALL))['ok'])")
        answer = subprocess.run(["/usr/sbin/runuser", "-u", "nobody", "-g", clients_group, "--", "python3", "-c", probe, service_path],
                                capture_output=True, text=True, timeout=30)
        if answer.stdout.strip() != "True":
            problems.append(f"a client in {clients_group} was not answered: {answer.stdout}{answer.stderr}")
        else:
            print(f"  ok: a client in {clients_group} was answered on {service_path}")
        process.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in "\n".join(heard):
            heard.append(notify.recv(4096).decode())
        code = process.wait(timeout=60)
        if code != 0:
            problems.append(f"SIGTERM: exit {code}")
        if not os.path.exists(service_path):
            problems.append("portierd removed the socket systemd owns")
        print(f"  ok: SIGTERM said STOPPING=1, exit {code}, sockets left to systemd")
    except socket.timeout:
        problems.append(f"no READY=1/STOPPING=1 within 60 s; heard {heard}; log: {open(os.path.join(work, 'portierd.log')).read()[-1500:]}")
        process.kill()

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("systemd: the units verify and run as written")
