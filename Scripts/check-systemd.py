#!/usr/bin/env python3
"""Deploy/systemd checked as systemd would run it: the systemd part of
Scripts/check-recipes.py, which runs `systemd-analyze verify` on the three
units and (as root) Deploy/README.md's systemd recipe as written, from a
PostgreSQL cluster with only a superuser to a serving portierd, with a
`systemctl` that does what systemd does with the installed units (sockets,
user and groups, LISTEN_FDS, NOTIFY_SOCKET and READY=1, reload, stop). The
test command runs `check-recipes.py all`; this entry point runs that part alone.

Usage: check-systemd.py BINDIR (or the portierd binary in it)
"""
import os
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
target = os.path.abspath(sys.argv[1])
bindir = os.path.dirname(target) if os.path.isfile(target) else target
recipes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-recipes.py")
os.execv(sys.executable, [sys.executable, recipes, "systemd", bindir])
