"""Runs the same requests through two collector binaries and compares what comes out: the span
metrics in /metrics (classic text; the collector's own agentrace_* series and the _created
timestamps left out) and every forwarded span, byte for byte, with its resource and scope.

usage: same_output.py BEFORE_BINARY AFTER_BINARY FIXTURE.json...

Each fixture is an OTLP/JSON ExportTraceServiceRequest, POSTed to /v1/traces. The collectors
forward over OTLP/HTTP to a capturing endpoint in this script. Exit status 0 when both outputs
are equal.
"""

import http.server
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Capture(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        Capture.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def run(binary, fixtures):
    Capture.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    args = [binary, "--traces-endpoint", endpoint, "--traces-protocol", "http/protobuf", "--graph-wait-secs", "1",
            "--gpu", "off"]
    for flag in ("--otlp-grpc-addr", "--otlp-http-addr", "--metrics-addr"):
        args += [flag, "127.0.0.1:0"]
    collector = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={"AGENTRACE_LOG": "info", "NO_COLOR": "1"})
    listening = ""
    while " listening " not in listening:
        listening = collector.stderr.readline()
        if not listening:
            raise SystemExit(f"{binary} exited before listening")
    threading.Thread(target=collector.stderr.read, daemon=True).start()
    addresses = dict(re.findall(r"(otlp_http|metrics)=(\S+)", listening))
    for fixture in fixtures:
        with open(fixture, "rb") as file:
            body = file.read()
        request = urllib.request.Request(f"http://{addresses['otlp_http']}/v1/traces", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 200, fixture
    # The agent-graph window (1 s) closes at the next one-second tick.
    time.sleep(3)
    with urllib.request.urlopen(f"http://{addresses['metrics']}/metrics") as response:
        metrics = response.read().decode()
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=30)
    server.shutdown()
    lines = sorted(line for line in metrics.splitlines()
                   if "agentrace_" not in line and not re.match(r"^\S+_created[{ ]", line))
    spans = []
    for body in Capture.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource.SerializeToString()
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope.SerializeToString()
                spans.extend((resource, scope, span.SerializeToString()) for span in scope_spans.spans)
    return lines, sorted(spans)


def main():
    before, after, fixtures = sys.argv[1], sys.argv[2], sys.argv[3:]
    before_lines, before_spans = run(before, fixtures)
    after_lines, after_spans = run(after, fixtures)
    report = {
        "fixtures": len(fixtures),
        "metric_lines": [len(before_lines), len(after_lines)],
        "forwarded_spans": [len(before_spans), len(after_spans)],
        "metrics_equal": before_lines == after_lines,
        "spans_equal": before_spans == after_spans,
    }
    if before_lines != after_lines:
        report["only_before"] = [line for line in before_lines if line not in after_lines][:20]
        report["only_after"] = [line for line in after_lines if line not in before_lines][:20]
    print(json.dumps(report, indent=1))
    sys.exit(0 if report["metrics_equal"] and report["spans_equal"] else 1)


if __name__ == "__main__":
    main()
