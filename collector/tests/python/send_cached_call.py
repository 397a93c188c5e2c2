"""Sends, through the official Python SDK and OTLP/HTTP exporter, one agent invocation whose
model call is recorded twice: by the application (a CLIENT `chat` span in GenAI v0.1.0 names:
1000 input tokens of which 600 read from and 200 written to the prompt cache, 50 output tokens
of which 20 reasoning) and by the inference server it called (vLLM's `llm_request` SERVER span,
a child of the client span, from a service of its own). Prints the trace id.

usage: send_cached_call.py ENDPOINT MODEL
"""

import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


def provider(service, endpoint):
    made = TracerProvider(resource=Resource.create({"service.name": service}))
    made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    return made


def main():
    endpoint, model = sys.argv[1:3]
    app, server = provider("cost-app", endpoint), provider("vllm-server", endpoint)
    tracer, server_tracer = app.get_tracer("agentrace.e2e"), server.get_tracer("vllm.tracing")
    agent_attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing-agent"}
    with tracer.start_as_current_span("invoke_agent billing-agent", attributes=agent_attributes) as agent:
        trace_id = format(agent.get_span_context().trace_id, "032x")
        call = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.cache_write.input_tokens": 200,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.reasoning.output_tokens": 20,
        }
        with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=call):
            served = {
                "gen_ai.request.model": model,
                "gen_ai.usage.prompt_tokens": 1000,
                "gen_ai.usage.completion_tokens": 50,
                "gen_ai.latency.time_to_first_token": 0.1,
                "gen_ai.latency.e2e": 0.3,
                "gen_ai.latency.time_in_queue": 0.01,
            }
            with server_tracer.start_as_current_span("llm_request", kind=SpanKind.SERVER, attributes=served):
                pass
    app.shutdown()
    server.shutdown()
    print(trace_id)


if __name__ == "__main__":
    main()
