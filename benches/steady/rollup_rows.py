"""Rollup write amplification under a steady load: posts API readings to a running
`timebucket serve` at a fixed rate, waits for them to be flushed, and prints how many WAL
pieces the flusher ended and how many partial rollup rows they wrote per reading (from the
service's own /metrics: timebucket_rollup_pieces_total, timebucket_rollup_partial_rows_total,
timebucket_readings_flushed_total).

    timebucket serve --data-dir /tmp/tb-steady --listen 127.0.0.1:18099 &
    python3 benches/steady/rollup_rows.py http://127.0.0.1:18099 20000 20

Arguments: the service's URL, readings per second, seconds. Readings: 8 services x 6
instances x 20 paths (960 series, as in the ingest bench), 500 per request, timestamps within
the last 5 s. Only the standard library, so it runs wherever Python 3 does; one poster, so
rates above about 50,000 readings/s are not reached (it prints what it posted).
"""

import json
import random
import sys
import time
import urllib.request

PER_POST = 500
COUNTERS = (
    "timebucket_readings_flushed_total",
    "timebucket_rollup_pieces_total",
    "timebucket_rollup_partial_rows_total",
)


def body(rng):
    now = time.time()
    api = []
    for _ in range(PER_POST):
        at = time.gmtime(now - rng.uniform(0, 5))
        api.append(
            {
                "service": f"svc-{rng.randrange(8)}",
                "instance": f"i-{rng.randrange(6)}",
                "method": "GET",
                "path": f"/p/{rng.randrange(20)}",
                "code": 200,
                "duration_ms": rng.uniform(1, 100),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", at),
            }
        )
    return json.dumps({"api": api}).encode()


def counters(url):
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in COUNTERS:
            values[parts[0]] = float(parts[1])
    return [values.get(name, 0.0) for name in COUNTERS]


def main():
    url, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(7)
    bodies = [body(rng) for _ in range(20)]
    interval = PER_POST / rate
    start, posts = time.time(), 0
    while time.time() - start < seconds:
        request = urllib.request.Request(
            url + "/v1/metrics",
            data=bodies[posts % len(bodies)],
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(request).read()
        posts += 1
        delay = start + posts * interval - time.time()
        if delay > 0:
            time.sleep(delay)
    posted = posts * PER_POST
    deadline = time.time() + 60
    while counters(url)[0] < posted and time.time() < deadline:
        time.sleep(0.2)
    flushed, pieces, rows = counters(url)
    print(
        f"posted {posted} readings in {time.time() - start:.0f} s ({rate}/s asked): "
        f"flushed {flushed:.0f}, pieces {pieces:.0f}, partial rows {rows:.0f} "
        f"({rows / max(flushed, 1):.3f} per reading)"
    )


if __name__ == "__main__":
    main()
