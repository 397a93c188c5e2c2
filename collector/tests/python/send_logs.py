"""Sends log records through the OpenTelemetry Python SDK's OTLP log exporter (gRPC or HTTP),
from Python's `logging`, inside a span so that they carry its trace id: a vLLM model-load
line, a vLLM CUDA out-of-memory error, an exception (a timeout) and an ordinary line. Prints
what it sent as JSON.

Usage: send_logs.py grpc|http ENDPOINT SERVICE
"""

import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        return OTLPLogExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    return OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")


def main():
    protocol, endpoint, service = sys.argv[1:4]
    resource = Resource.create({"service.name": service})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter(protocol, endpoint)))
    logger = logging.getLogger("vllm")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    tracer = TracerProvider(resource=resource).get_tracer("send_logs")
    sent = []
    with tracer.start_as_current_span("serve") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        for level, line in [
            (logging.INFO, "Loading weights took 5.21 seconds"),
            (logging.ERROR, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."),
            (logging.INFO, "Avg prompt throughput: 1234.5 tokens/s, Avg generation throughput: 456.7 tokens/s"),
        ]:
            logger.log(level, line)
            sent.append({"body": line, "severity": logging.getLevelName(level)})
        try:
            raise TimeoutError("upstream did not answer")
        except TimeoutError:
            logger.exception("request failed")
            sent.append({"body": "request failed", "severity": "ERROR"})
    provider.shutdown()
    print(json.dumps({"trace_id": trace_id, "records": sent}))


if __name__ == "__main__":
    main()
