"""Sends one agent trace in OpenTelemetry GenAI attribute names through the official Python SDK
and OTLP exporter, then prints its trace id.

An agent `researcher` calls the tool `web_search` and makes two chat calls to gpt-4o; the
second times out. Tokens: 100 + 50 input, 40 output.

usage: send_genai.py {grpc|http} ENDPOINT SERVICE_NAME
"""

import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint + "/v1/traces")


def main():
    protocol, endpoint, service = sys.argv[1:4]
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter(protocol, endpoint)))
    tracer = provider.get_tracer("agentrace.e2e")

    with tracer.start_as_current_span(
        "invoke_agent researcher",
        kind=SpanKind.INTERNAL,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"},
    ) as agent:
        trace_id = format(agent.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span(
            "execute_tool web_search",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "web_search",
                "gen_ai.agent.name": "researcher",
            },
        ):
            pass
        chat = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.agent.name": "researcher",
        }
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=chat) as call:
            call.set_attribute("gen_ai.usage.input_tokens", 100)
            call.set_attribute("gen_ai.usage.output_tokens", 40)
            call.set_attribute("gen_ai.response.finish_reasons", ["stop"])
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=SpanKind.CLIENT, attributes=chat, record_exception=False, set_status_on_exception=False
        ) as call:
            call.set_attribute("gen_ai.usage.input_tokens", 50)
            error = TimeoutError("Request timed out.")
            call.record_exception(error)
            call.set_attribute("error.type", "timeout")
            call.set_status(Status(StatusCode.ERROR, str(error)))

    provider.shutdown()
    print(trace_id)


if __name__ == "__main__":
    main()
