#!/usr/bin/env python3
"""Records the spans one agent scenario exports, for the golden fixtures.

    target/agents/<framework>/bin/python collector/tests/agents/capture_otlp.py FRAMEWORK \
        [--rounds 2] [--protocol http|grpc] [--rate-limit-every N] [--out-dir DIR] \
        [--mock-log FILE]

Starts the mock OpenAI server (mock_openai.py), an OTLP/HTTP receiver (and an OTLP/gRPC one
for --protocol grpc) on 127.0.0.1, runs run_FRAMEWORK.py against both with the venv's
Python, then writes to DIR (collector/tests/fixtures/agents by default):

  FRAMEWORK.json        every ExportTraceServiceRequest received, merged into one, as OTLP
                        JSON (camelCase keys, hex ids, enums as numbers); spans are grouped
                        per resource and scope in the order they arrived; the string values
                        of attributes that hold prompt or completion content (and of event
                        attributes that do) are replaced by "[content]", every key and every
                        other value is kept, timestamps as emitted
  FRAMEWORK.truth.json  {"scenario": the JSON line the scenario printed,
                         "mock": the mock's /truth}

Needs opentelemetry-proto (and grpcio for gRPC), which every agent venv has.
"""

import argparse
import base64
import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Attribute keys whose string values are prompt, completion, tool argument or tool result
# content (or carry it inside JSON).
CONTENT_KEYS = [re.compile(p) for p in (
    r"^gen_ai\.(input|output)\.messages$",
    r"^gen_ai\.system_instructions$",
    r"^gen_ai\.(prompt|completion)(\..*)?$",
    r"^gen_ai\.tool\.call\.(arguments|result)$",
    r"^gen_ai\.tool\.(input|output)$",
    r"^gen_ai\.(request|response)\.(content|message)s?$",
    r"^llm\.(input|output)_messages\.\d+\.message\.(content|reasoning)$",
    r"^llm\.(input|output)_messages\.\d+\.message\.contents\.\d+\.message_content\.(text|image.*)$",
    r"^llm\.(input|output)_messages\.\d+\.message\.tool_calls\.\d+\.tool_call\.function\.arguments$",
    r"^llm\.prompts?(\..*)?$",
    r"^llm\.prompt_template\.(template|variables)$",
    r"^(input|output)\.value$",
    r"^message\.content$",
    r"^(tool_arguments|tool_response|final_result|all_messages_events|pydantic_ai\.all_messages)$",
    r"^(system_prompt|instructions|prompt|task|query|answer|result|response|content)$",
    r"^smolagents\.task$",
    r"^crewai\.(task|agent)\.(description|goal|backstory|expected_output|output)$",
    r"^gcp\.vertex\.agent\.(llm_request|llm_response|tool_call_args|tool_response|data)$",
    r"^(event\.)?(content|message|body|tool\.result|tool_response)$",
)]
CONTENT = "[content]"


def is_content(key):
    return any(p.match(key) for p in CONTENT_KEYS)


def scrub_value(value):
    """The value with every string inside replaced by the placeholder."""
    if "stringValue" in value:
        return {"stringValue": CONTENT}
    if "arrayValue" in value:
        return {"arrayValue": {"values": [
            scrub_value(v) for v in value["arrayValue"].get("values", [])]}}
    if "kvlistValue" in value:
        return {"kvlistValue": {"values": [
            {"key": kv["key"], "value": scrub_value(kv.get("value", {}))}
            for kv in value["kvlistValue"].get("values", [])]}}
    return value


# Inside other attributes that hold JSON (pydantic-ai's model_request_parameters carries the
# instructions, CrewAI's crew_agents and crew_tasks the backstories and task descriptions), the
# string values of these keys are content.
JSON_CONTENT_KEYS = {"content", "instructions", "system_prompt", "text"}
JSON_CONTENT_KEYS_OF = {
    "crew_agents": JSON_CONTENT_KEYS | {"goal", "backstory"},
    "crew_tasks": JSON_CONTENT_KEYS | {"description", "expected_output"},
}


def scrub_json(node, keys=JSON_CONTENT_KEYS):
    changed = False
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str) and value != CONTENT:
                node[key] = CONTENT
                changed = True
            else:
                changed |= scrub_json(value, keys)
    elif isinstance(node, list):
        for value in node:
            changed |= scrub_json(value, keys)
    return changed


def scrub_embedded(value, keys=JSON_CONTENT_KEYS):
    text = value.get("stringValue")
    if not isinstance(text, str) or not text[:1] in ("{", "["):
        return value
    try:
        parsed = json.loads(text)
    except ValueError:
        return value
    if not scrub_json(parsed, keys):
        return value
    compact = ": " not in text and ", " not in text
    separators = (",", ":") if compact else (", ", ": ")
    return {"stringValue": json.dumps(parsed, separators=separators, ensure_ascii=False)}


def scrub_attributes(attributes):
    for attribute in attributes or []:
        if is_content(attribute["key"]):
            attribute["value"] = scrub_value(attribute.get("value", {}))
        else:
            keys = JSON_CONTENT_KEYS_OF.get(attribute["key"], JSON_CONTENT_KEYS)
            attribute["value"] = scrub_embedded(attribute.get("value", {}), keys)


def hexify(b64):
    return base64.b64decode(b64).hex() if b64 else b64


def normalize_span(span):
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in span:
            span[key] = hexify(span[key])
    for link in span.get("links", []):
        for key in ("traceId", "spanId"):
            if key in link:
                link[key] = hexify(link[key])
        scrub_attributes(link.get("attributes"))
    scrub_attributes(span.get("attributes"))
    for event in span.get("events", []):
        scrub_attributes(event.get("attributes"))
    return span


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []

    def add(self, request):
        with self.lock:
            self.requests.append(MessageToDict(request, use_integers_for_enums=True))

    def span_count(self):
        with self.lock:
            return sum(len(ss.get("spans", []))
                       for r in self.requests for rs in r.get("resourceSpans", [])
                       for ss in rs.get("scopeSpans", []))

    def merged(self):
        resources = []  # [(resource key, resource json, [(scope key, scope json, spans)])]
        with self.lock:
            requests = list(self.requests)
        for request in requests:
            for resource_spans in request.get("resourceSpans", []):
                resource = resource_spans.get("resource", {})
                rkey = json.dumps([resource, resource_spans.get("schemaUrl")], sort_keys=True)
                entry = next((r for r in resources if r[0] == rkey), None)
                if entry is None:
                    entry = (rkey, resource_spans, [])
                    resources.append(entry)
                for scope_spans in resource_spans.get("scopeSpans", []):
                    scope = scope_spans.get("scope", {})
                    skey = json.dumps([scope, scope_spans.get("schemaUrl")], sort_keys=True)
                    group = next((s for s in entry[2] if s[0] == skey), None)
                    if group is None:
                        group = (skey, scope_spans, [])
                        entry[2].append(group)
                    group[2].extend(normalize_span(s) for s in scope_spans.get("spans", []))
        out = []
        for _, resource_spans, scopes in resources:
            merged = {"resource": resource_spans.get("resource", {}), "scopeSpans": []}
            for _, scope_spans, spans in scopes:
                scope = {"scope": scope_spans.get("scope", {}), "spans": spans}
                if scope_spans.get("schemaUrl"):
                    scope["schemaUrl"] = scope_spans["schemaUrl"]
                merged["scopeSpans"].append(scope)
            if resource_spans.get("schemaUrl"):
                merged["schemaUrl"] = resource_spans["schemaUrl"]
            out.append(merged)
        return {"resourceSpans": out}


def http_receiver(store):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                data = gzip.decompress(data)
            elif encoding == "deflate":
                data = zlib.decompress(data)
            request = trace_service_pb2.ExportTraceServiceRequest()
            if "json" in (self.headers.get("Content-Type") or ""):
                from google.protobuf.json_format import Parse
                Parse(data, request)
            else:
                request.ParseFromString(data)
            store.add(request)
            body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


def grpc_receiver(store):
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            store.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, "http://127.0.0.1:%d" % port


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("framework")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--rate-limit-every", type=int, default=0)
    parser.add_argument("--out-dir", default=str(REPO / "collector/tests/fixtures/agents"))
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--mock-log", help="the mock's --log FILE (every request body)")
    args = parser.parse_args()

    store = Store()
    if args.protocol == "grpc":
        receiver, endpoint = grpc_receiver(store)
    else:
        receiver, endpoint = http_receiver(store)
    mock = subprocess.Popen(
        [sys.executable, str(HERE / "mock_openai.py"), "--port", "0",
         "--rate-limit-every", str(args.rate_limit_every)]
        + (["--log", args.mock_log] if args.mock_log else []),
        stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(mock.stdout.readline())["port"]
        env = dict(os.environ, OPENAI_API_KEY="test")
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, str(HERE / ("run_%s.py" % args.framework)),
             "--openai-base-url", "http://127.0.0.1:%d/v1" % port,
             "--otlp-endpoint", endpoint, "--otlp-protocol", args.protocol,
             "--service-name", "agents-" + args.framework.replace("_", "-"),
             "--rounds", str(args.rounds)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=args.timeout)
        elapsed = time.monotonic() - started
        sys.stderr.write(run.stderr)
        if run.returncode != 0:
            sys.exit("run_%s.py failed with %d" % (args.framework, run.returncode))
        scenario = json.loads(run.stdout.strip().splitlines()[-1])
        with urllib.request.urlopen("http://127.0.0.1:%d/truth" % port) as answer:
            truth = json.load(answer)
    finally:
        mock.terminate()
        mock.wait(10)
    time.sleep(0.5)
    if args.protocol == "grpc":
        receiver.stop(1)
    else:
        receiver.shutdown()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spans = store.merged()
    (out_dir / ("%s.json" % args.framework)).write_text(json.dumps(spans, indent=1) + "\n")
    (out_dir / ("%s.truth.json" % args.framework)).write_text(
        json.dumps({"scenario": scenario, "mock": truth}, indent=1) + "\n")
    print(json.dumps({"framework": args.framework, "spans": store.span_count(),
                      "requests": len(store.requests), "seconds": round(elapsed, 1),
                      "scenario": scenario, "mock": truth}))


if __name__ == "__main__":
    main()
