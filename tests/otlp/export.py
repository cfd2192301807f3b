"""An app instrumented with the official OpenTelemetry Python SDK, driven line by line.

Configured only by the standard OTEL_* environment variables, as a user would configure any
app: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf or grpc),
OTEL_EXPORTER_OTLP_COMPRESSION, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION, OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES.

Commands on stdin, one JSON object per line:
  {"op": "record", "method": "GET", "route": "/cart", "code": 200, "seconds": [0.01, ...]}
      records request durations in http.server.request.duration (seconds), or with
      "legacy": true in http.server.duration (milliseconds, the pre-1.20 convention);
  {"op": "host", "cpu": {"user": 0.25, ...}, "mem_used": 1, "mem_limit": 2,
   "fs": {"used": 1, "free": 2}, "rss": 3}
      sets what the host instruments report at the next collection;
  {"op": "count", "name": "app.jobs", "value": 3}
      adds to a counter no convention maps (timebucket rejects it as partial success);
  {"op": "export"}
      collects and exports now; answers {"exported": true|false};
  {"op": "exit"}
      shuts the SDK down.
Every command is answered with one JSON line.
"""

import json
import os
import sys
import time

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

# The buckets the HTTP semantic conventions advise for http.server.request.duration.
STABLE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def exporter():
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(insecure=True)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    raise SystemExit(f"unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol}")


class Recording(MetricExporter):
    """Passes every export to the real exporter and keeps its result."""

    def __init__(self, inner):
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.last = None

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        self.last = self.inner.export(metrics_data, timeout_millis=timeout_millis)
        return self.last

    def force_flush(self, timeout_millis=10_000):
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis=30_000, **kwargs):
        self.inner.shutdown(timeout_millis=timeout_millis)


def main():
    recording = Recording(exporter())
    # Exports happen on "export" only: the periodic timer is pushed out of the way.
    reader = PeriodicExportingMetricReader(recording, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(), metric_readers=[reader])
    meter = provider.get_meter("tests.otlp.export", "1.0")
    stable = meter.create_histogram(
        "http.server.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=STABLE_BUCKETS,
    )
    legacy = meter.create_histogram("http.server.duration", unit="ms")
    host = {}

    def gauge(name, unit, observe):
        def callback(_options):
            return observe() if host else []

        meter.create_observable_gauge(name, callbacks=[callback], unit=unit)

    def updown(name, observe):
        def callback(_options):
            return observe() if host else []

        meter.create_observable_up_down_counter(name, callbacks=[callback], unit="By")

    gauge(
        "system.cpu.utilization",
        "1",
        lambda: [
            Observation(v, {"cpu.mode": mode, "cpu.logical_number": 0})
            for mode, v in host.get("cpu", {}).items()
        ],
    )
    updown(
        "system.memory.usage",
        lambda: [Observation(host["mem_used"], {"system.memory.state": "used"})],
    )
    updown("system.memory.limit", lambda: [Observation(host["mem_limit"])])
    updown(
        "system.filesystem.usage",
        lambda: [
            Observation(
                v,
                {
                    "system.device": "sda1",
                    "system.filesystem.mountpoint": "/",
                    "system.filesystem.state": state,
                },
            )
            for state, v in host.get("fs", {}).items()
        ],
    )
    updown("process.memory.usage", lambda: [Observation(host["rss"])])
    counters = {}

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        answer = {"ok": True}
        if op == "record":
            attributes = {
                "http.request.method": command["method"],
                "http.route": command["route"],
                "http.response.status_code": command["code"],
                "url.scheme": "http",
            }
            for seconds in command["seconds"]:
                if command.get("legacy"):
                    legacy.record(seconds * 1000.0, attributes)
                else:
                    stable.record(seconds, attributes)
        elif op == "host":
            host.clear()
            host.update({k: v for k, v in command.items() if k != "op"})
        elif op == "count":
            name = command["name"]
            if name not in counters:
                counters[name] = meter.create_counter(name)
            counters[name].add(command["value"])
        elif op == "export":
            # Two collections of one stream are never in the same millisecond.
            time.sleep(0.005)
            recording.last = None
            provider.force_flush(timeout_millis=60_000)
            answer = {"exported": recording.last == MetricExportResult.SUCCESS}
        elif op == "exit":
            provider.shutdown()
            print(json.dumps(answer), flush=True)
            return
        else:
            answer = {"ok": False, "error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
