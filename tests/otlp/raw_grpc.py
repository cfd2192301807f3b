"""Sends raw bytes as an OTLP/gRPC MetricsService/Export request, the way any gRPC client
would, and prints the answer: {"code": "OK"} or {"code": ..., "details": ..., "retry_delay_s": ...}.

Usage: raw_grpc.py HOST:PORT HEX_OF_THE_MESSAGE
"""

import json
import sys

import grpc
from google.rpc.error_details_pb2 import RetryInfo

METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def main():
    target, message = sys.argv[1], bytes.fromhex(sys.argv[2])
    with grpc.insecure_channel(target) as channel:
        export = channel.unary_unary(METHOD)
        try:
            export(message, timeout=30)
            print(json.dumps({"code": "OK"}))
        except grpc.RpcError as error:
            answer = {"code": error.code().name, "details": error.details()}
            for key, value in error.trailing_metadata() or ():
                if key == "google.rpc.retryinfo-bin":
                    info = RetryInfo()
                    info.ParseFromString(value)
                    answer["retry_delay_s"] = info.retry_delay.seconds
            print(json.dumps(answer))


if __name__ == "__main__":
    main()
