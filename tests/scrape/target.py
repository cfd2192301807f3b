"""A scrape target served by the official Prometheus Python client, driven by the tests.

Usage: target.py PORT FAMILIES   (PORT 0: any free port; FAMILIES: comma-separated of
histogram, counter, summary)

Prints "port N" once serving. Then reads commands on stdin, one per line, and answers "ok"
after each:
    request METHOD PATH CODE SECONDS [N]   record N (default 1) requests in the chosen families
Exits when stdin closes.
"""
import sys

from prometheus_client import REGISTRY, Counter, Histogram, Summary, start_http_server

port = int(sys.argv[1])
families = set(sys.argv[2].split(","))
labels = ["method", "handler", "code"]
# Default registry: the client's own process_* and python_* collectors come along, as in a
# real app (the process ones map to host gauges, the rest stays unmapped).
histogram = Histogram("http_request_duration_seconds", "request durations", labels) if "histogram" in families else None
counter = Counter("http_requests", "requests", labels) if "counter" in families else None
summary = Summary("http_server_requests_seconds", "request durations (Micrometer's name)", ["method", "uri", "status"]) if "summary" in families else None

server, _thread = start_http_server(port, addr="127.0.0.1", registry=REGISTRY)
print(f"port {server.server_port}", flush=True)

for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "request":
        method, path, code, seconds = words[1], words[2], words[3], float(words[4])
        n = int(words[5]) if len(words) > 5 else 1
        for _ in range(n):
            if histogram:
                histogram.labels(method, path, code).observe(seconds)
            if counter:
                counter.labels(method, path, code).inc()
            if summary:
                summary.labels(method, path, code).observe(seconds)
    print("ok", flush=True)
