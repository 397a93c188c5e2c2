"""An agent calls a tool on an MCP server through the `mcp` package (2.x), whose client and
server record their own OpenTelemetry spans (the MCP semantic conventions). The server is a
real subprocess on stdio with a service of its own; trace context crosses in the requests'
`_meta`. Both processes export OTLP/HTTP to the collector.

    run_mcp.py ENDPOINT            # the agent: prints its trace id
    run_mcp.py --serve ENDPOINT    # the server (started by the agent)

The agent's own span is an `invoke_agent weather-agent` span in the GenAI conventions. It
calls `get_weather` twice: Paris succeeds, Atlantis is a tool error (`isError`).
"""

import asyncio
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

WEATHER = {"Paris": "sunny, 21C"}


def tracing(service: str, endpoint: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def serve(endpoint: str) -> None:
    provider = tracing("weather-mcp-server", endpoint)
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("weather")

    @server.tool()
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        if city not in WEATHER:
            raise ToolError(f"unknown city: {city}")
        return f"{city}: {WEATHER[city]}"

    try:
        asyncio.run(server.run_stdio_async())
    finally:
        provider.shutdown()


async def agent(endpoint: str) -> str:
    from mcp import Client, StdioServerParameters

    tracer = trace.get_tracer("weather-agent")
    server = StdioServerParameters(command=sys.executable, args=[__file__, "--serve", endpoint])
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather-agent"}
    with tracer.start_as_current_span("invoke_agent weather-agent", attributes=attributes) as span:
        async with Client(server) as client:
            ok = await client.call_tool("get_weather", {"city": "Paris"})
            failed = await client.call_tool("get_weather", {"city": "Atlantis"})
            assert not ok.is_error and failed.is_error, (ok, failed)
        return format(span.get_span_context().trace_id, "032x")


def main() -> None:
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
        return
    provider = tracing("mcp-agent", sys.argv[1])
    trace_id = asyncio.run(agent(sys.argv[1]))
    provider.shutdown()
    print(trace_id)


if __name__ == "__main__":
    main()
