#!/usr/bin/env python3
"""The metrics page checked by an independent parser (issue 16): the Python
`prometheus_client` text parser (PyPI) reads `support.metrics` (and, if
given, GET /metrics of `--metrics-listen unix:PATH`). Every family has help
and a type; the expected families are there; histograms are cumulative and
end in +Inf = count; a second scrape finds no counter smaller (nothing is
reset by a scrape).

Usage: check-metrics.py SUPPORT_SOCKET [METRICS_UNIX_SOCKET]
"""
import json
import socket
import struct
import sys

from prometheus_client.parser import text_string_to_metric_families


def support_metrics(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    body = json.dumps({"id": 1, "op": "support.metrics"}).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    reply = json.loads(s.recv(n, socket.MSG_WAITALL))
    assert reply["ok"], reply
    return reply["result"]["text"]


def http_metrics(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: portierd\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    return body.decode()


def parse(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


problems = []
first = parse(support_metrics(sys.argv[1]))
expected = {
    "portier_build_info": "gauge", "portier_requests": "counter", "portier_request_duration_seconds": "histogram",
    "portier_connections": "gauge", "portier_requests_in_flight": "gauge", "portier_db_pool_connections": "gauge",
    "portier_db_pool_waiting_requests": "gauge", "portier_environment_turns": "gauge", "portier_index_environments": "gauge",
    "portier_index_bytes": "gauge", "portier_index_lookups": "counter", "portier_index_catchup_seconds": "histogram",
    "process_cpu_seconds": "counter", "process_resident_memory_bytes": "gauge", "process_virtual_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge", "process_open_fds": "gauge", "process_max_fds": "gauge",
}
for name, kind in expected.items():
    if name not in first:
        problems.append(f"missing family {name}")
    elif first[name].type != kind:
        problems.append(f"{name} is a {first[name].type}, expected {kind}")
for name, family in first.items():
    if not family.documentation:
        problems.append(f"{name} has no # HELP")
    if family.type == "histogram":
        series = {}
        for sample in family.samples:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None})
            if sample.name.endswith("_bucket"):
                series[key]["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                series[key]["count"] = sample.value
        for key, s in series.items():
            values = [v for _, v in sorted(s["buckets"])]
            if values != sorted(values):
                problems.append(f"{name}{dict(key)}: buckets not cumulative")
            if not s["buckets"] or sorted(s["buckets"])[-1][0] != float("inf") or values[-1] != s["count"]:
                problems.append(f"{name}{dict(key)}: the +Inf bucket is not the count")
build = [s for s in first["portier_build_info"].samples] if "portier_build_info" in first else []
if not build or "version" not in build[0].labels or build[0].value != 1:
    problems.append(f"portier_build_info: {build}")

second = parse(support_metrics(sys.argv[1]))
for name, family in first.items():
    if family.type not in ("counter", "histogram"):
        continue
    before = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    for s in second.get(name, family).samples:
        key = (s.name, tuple(sorted(s.labels.items())))
        if key in before and s.value < before[key]:
            problems.append(f"{s.name}{s.labels} went down from {before[key]} to {s.value} between two scrapes")

if len(sys.argv) > 2:
    over_http = parse(http_metrics(sys.argv[2]))
    if set(over_http) != set(first):
        problems.append(f"GET /metrics and support.metrics differ: {set(over_http) ^ set(first)}")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"metrics: {len(first)} families, each with help and type, parsed by prometheus_client; histograms cumulative; nothing reset by a scrape")
