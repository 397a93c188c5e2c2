"""What every run_<framework>.py shares: the command line, the OpenTelemetry SDK set-up, the
counts kept in the tool bodies and around the runs, and the closing JSON line.

    python run_<framework>.py --openai-base-url http://127.0.0.1:PORT/v1 \
        --otlp-endpoint URL --otlp-protocol grpc|http --service-name NAME --rounds N

The scenario: a `coordinator` agent (model gpt-4o) with the tool `get_weather`, which
delegates to a `researcher` agent (model gpt-4o-mini) with the tool `search_notes`. The
coordinator runs N times, each run its own trace. The last line on stdout is

    {"framework": ..., "versions": {package: version},
     "tool_calls": {"coordinator": {"get_weather": n}, "researcher": {"search_notes": n}},
     "delegations": {"coordinator": {DELEGATE TOOL: n}},
     "invocations": {"coordinator": n, "researcher": n}, "streamed_runs": n}

counted in the tool bodies and around the runs, never from spans.
"""

import argparse
import importlib.metadata
import json
import os
import sys
import threading

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

# Frameworks that report usage to their vendors are kept quiet; none of this leaves the host.
for _key, _value in {
    "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY") or "test",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "OTEL_SDK_DISABLED": "false",
    "ANONYMIZED_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "AUTOGEN_USE_DOCKER": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "ADK_DISABLE_TELEMETRY": "true",
    "GOOGLE_CLOUD_DISABLE_TELEMETRY": "true",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

COORDINATOR_MODEL = "gpt-4o"
RESEARCHER_MODEL = "gpt-4o-mini"
QUESTION = "What is the weather in Lisbon, and what do the research notes say about Lisbon?"
COORDINATOR_INSTRUCTIONS = (
    "You are the coordinator. Use get_weather for the weather and delegate note lookups to "
    "the researcher. Answer concisely."
)
RESEARCHER_INSTRUCTIONS = "You are the researcher. Use search_notes to find notes. Be concise."
WEATHER_RESULT = "sunny, 21 degrees in Lisbon"
NOTES_RESULT = "notes: Lisbon has yellow trams"


_RESULT_OUT = None


def _keep_stdout_for_the_result():
    """Points file descriptor 1 at stderr, so that whatever a framework prints goes there, and
    keeps the real stdout for the closing JSON line."""
    global _RESULT_OUT
    if _RESULT_OUT is None:
        sys.stdout.flush()
        _RESULT_OUT = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--openai-base-url", required=True)
    parser.add_argument("--otlp-endpoint", required=True)
    parser.add_argument("--otlp-protocol", choices=("grpc", "http"), required=True)
    parser.add_argument("--service-name", required=True)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    _keep_stdout_for_the_result()
    os.environ["OPENAI_BASE_URL"] = args.openai_base_url
    os.environ["OPENAI_API_BASE"] = args.openai_base_url
    return args


class Counts:
    """Tool calls and invocations, counted where they happen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tool_calls = {"coordinator": {"get_weather": 0}, "researcher": {"search_notes": 0}}
        self.delegations = {"coordinator": {}}
        self.invocations = {"coordinator": 0, "researcher": 0}
        self.streamed_runs = 0

    def tool(self, agent, name):
        with self.lock:
            calls = self.tool_calls.setdefault(agent, {})
            calls[name] = calls.get(name, 0) + 1

    def delegated(self, agent, tool):
        """A call of the tool (or managed-agent entry) through which `agent` hands work to the
        researcher; kept apart from the plain tools."""
        with self.lock:
            calls = self.delegations.setdefault(agent, {})
            calls[tool] = calls.get(tool, 0) + 1

    def invoked(self, agent):
        with self.lock:
            self.invocations[agent] += 1

    def streaming(self, round_index):
        """Whether round `round_index` (0-based) streams: every second round does."""
        return round_index % 2 == 1

    def streamed(self):
        with self.lock:
            self.streamed_runs += 1


class _Watched(SpanExporter):
    """Passes batches to the OTLP exporter and remembers whether one failed."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self):
        return self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def setup_tracing(args):
    """A global TracerProvider that exports over OTLP to --otlp-endpoint."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if args.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=args.otlp_endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=args.otlp_endpoint.rstrip("/") + "/v1/traces")
    watched = _Watched(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": args.service_name}))
    provider.add_span_processor(BatchSpanProcessor(watched))
    trace.set_tracer_provider(provider)
    provider._agentrace_watched = watched
    return provider


def versions(*packages):
    out = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def finish(provider, framework, packages, counts):
    """Flushes every span, shuts the provider down and prints the closing JSON line."""
    flushed = provider.force_flush(30000)
    provider.shutdown()
    failures = provider._agentrace_watched.failures
    sys.stdout.flush()
    print(json.dumps({
        "framework": framework,
        "versions": versions(*packages, "opentelemetry-sdk"),
        "tool_calls": counts.tool_calls,
        "delegations": counts.delegations,
        "invocations": counts.invocations,
        "streamed_runs": counts.streamed_runs,
    }), file=_RESULT_OUT or sys.stdout, flush=True)
    if not flushed or failures:
        sys.exit("span export failed (%d failed batches, flushed=%s)" % (failures, flushed))
