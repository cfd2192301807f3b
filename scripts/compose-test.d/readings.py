#!/usr/bin/env python3
"""Readings for scripts/compose-test: post batches, then check that every acknowledged one is
stored exactly once. Python's standard library only.

  readings.py post URL BATCH COUNT LEDGER   post COUNT readings in one request; on 202 append them
                                            to LEDGER (JSON lines): acknowledged = must be stored
  readings.py check URL LEDGER [SECONDS]    query /v1/readings until every reading of LEDGER is
                                            there exactly once (the flusher writes in the
                                            background), or fail after SECONDS (default 120)

Both send TIMEBUCKET_TOKEN, when set, as the bearer token.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SERVICE = "compose-test"


def auth():
    token = os.environ.get("TIMEBUCKET_TOKEN")
    return {"authorization": f"Bearer {token}"} if token else {}


def post(url, batch, count, ledger):
    now_ms = int(time.time() * 1000)
    readings = [
        {
            "service": SERVICE,
            "instance": "ci-1",
            "method": "POST",
            "path": f"/{batch}/{i}",
            "code": 200 + i % 3,
            "duration_ms": float(i % 50) + 0.5,
            "count": 1 + i % 4,
            "timestamp": now_ms - i,
        }
        for i in range(count)
    ]
    body = json.dumps({"api": readings}).encode()
    request = urllib.request.Request(
        f"{url}/v1/metrics", data=body, headers={"content-type": "application/json", **auth()}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status != 202 or json.loads(text) != {"accepted": count}:
        sys.exit(f"post {batch}: expected 202 {{\"accepted\": {count}}}, got {status} {text}")
    with open(ledger, "a") as f:
        for r in readings:
            f.write(json.dumps(r) + "\n")
    print(f"readings: batch {batch}: {count} acknowledged")


def stored(url, since_ms, until_ms):
    found, cursor = [], None
    while True:
        query = {"service": SERVICE, "from": since_ms, "to": until_ms, "limit": 1000}
        if cursor:
            query["cursor"] = cursor
        request = urllib.request.Request(
            f"{url}/v1/readings?{urllib.parse.urlencode(query)}", headers=auth()
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            page = json.load(answer)
        found.extend(page["readings"])
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def check(url, ledger, seconds=120.0):
    with open(ledger) as f:
        expected = {r["path"]: r for r in map(json.loads, f)}
    since = min(r["timestamp"] for r in expected.values())
    until = max(r["timestamp"] for r in expected.values())
    deadline = time.monotonic() + seconds
    while True:
        problem = None
        try:
            rows = stored(url, since, until)
        except (OSError, ValueError) as e:  # the service is still starting
            rows, problem = [], f"query failed: {e}"
        by_path = {}
        for row in rows:
            by_path.setdefault(row["path"], []).append(row)
        missing = sorted(set(expected) - set(by_path))
        twice = sorted(p for p, rs in by_path.items() if len(rs) > 1)
        extra = sorted(set(by_path) - set(expected))
        wrong = sorted(
            p
            for p, rs in by_path.items()
            if p in expected
            and any(
                (r["instance"], r["method"], r["code"], r["duration_ms"], r["count"])
                != (
                    expected[p]["instance"],
                    expected[p]["method"],
                    expected[p]["code"],
                    expected[p]["duration_ms"],
                    expected[p]["count"],
                )
                for r in rs
            )
        )
        if twice or extra or wrong:
            sys.exit(f"readings: stored twice {twice[:5]}, unexpected {extra[:5]}, altered {wrong[:5]}")
        if not missing and problem is None:
            print(f"readings: all {len(expected)} acknowledged readings stored exactly once")
            return
        if time.monotonic() > deadline:
            sys.exit(
                f"readings: after {seconds:.0f} s, {len(missing)} of {len(expected)} acknowledged "
                f"readings are missing (e.g. {missing[:5]}){'; ' + problem if problem else ''}"
            )
        time.sleep(1)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "post":
        post(args[1], args[2], int(args[3]), args[4])
    elif len(args) in (3, 4) and args[0] == "check":
        check(args[1], args[2], *(float(a) for a in args[3:]))
    else:
        sys.exit(__doc__)
