"""Queries a timebucket service with prometheus-api-client and prints what it parsed as JSON.

Usage: client.py URL AT_UNIX_SECONDS
"""
import json
import sys
from datetime import datetime, timedelta, timezone

from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

url, at = sys.argv[1], int(sys.argv[2])
end = datetime.fromtimestamp(at, tz=timezone.utc)
start = end - timedelta(hours=1)
window = {"start": str(at - 3 * 3600), "end": str(at)}
prom = PrometheusConnect(url=url, disable_ssl=True)

instant = prom.custom_query(
    'sum by (path) (increase(http_server_request_duration_seconds_count{service="shop"}[10m]))',
    params={"time": at},
)
for sample in instant:
    sample["value"] = [float(sample["value"][0]), float(sample["value"][1])]

ranged = prom.custom_query_range(
    'sum(rate(http_server_request_duration_seconds_count{service="shop"}[5m]))',
    start_time=start,
    end_time=end,
    step="60",
)
points = [float(v) for series in ranged for _, v in series["values"]]

scalar = prom.custom_query("1 + 1", params={"time": at})
try:
    prom.custom_query("stddev(host_cpu_percent)")
    refused = "not refused"
except PrometheusApiClientException as error:
    refused = str(error)

print(json.dumps({
    "instant": instant,
    "range_points": len(points),
    "metrics": prom.all_metrics(params=window),
    "labels": prom.get_label_names(params=window),
    "paths": prom.get_label_values("path", params=window),
    "series": len(prom.get_series(start, end, params={"match[]": 'host_cpu_percent{service="shop"}'})),
    "metadata": prom.get_metric_metadata("host_cpu_percent"),
    "scalar": float(scalar[1]),
    "refused": refused,
}))
