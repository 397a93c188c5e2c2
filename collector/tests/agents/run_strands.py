"""The coordinator/researcher scenario on Strands Agents with its OpenAI model provider,
traced by Strands' built-in OpenTelemetry tracing (StrandsTelemetry on the global
TracerProvider). The coordinator delegates through the researcher turned into a tool
(`Agent.as_tool`, named `ask_researcher`). The coordinator's model streams (the provider's
default, with usage requested); the researcher's model is set to `stream: False`. Odd rounds
call the agent, even rounds iterate `stream_async`. See scenario.py for the command line."""

import asyncio

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from strands import Agent, tool
    from strands.hooks import BeforeInvocationEvent, BeforeToolCallEvent
    from strands.models.openai import OpenAIModel
    from strands.telemetry import StrandsTelemetry

    StrandsTelemetry(tracer_provider=provider)
    counts = scenario.Counts()
    client_args = {"base_url": args.openai_base_url, "api_key": "test"}

    @tool
    def search_notes(topic: str) -> str:
        """Search the research notes about a topic.

        Args:
            topic: what to look for
        """
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city.

        Args:
            city: the city
        """
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    researcher = Agent(
        name="researcher",
        description="Looks things up in the research notes.",
        system_prompt=scenario.RESEARCHER_INSTRUCTIONS,
        model=OpenAIModel(client_args=client_args, model_id=scenario.RESEARCHER_MODEL,
                          stream=False),
        tools=[search_notes],
        callback_handler=None,
    )
    researcher.add_hook(lambda event: counts.invoked("researcher"), BeforeInvocationEvent)
    coordinator = Agent(
        name="coordinator",
        system_prompt=scenario.COORDINATOR_INSTRUCTIONS,
        model=OpenAIModel(client_args=client_args, model_id=scenario.COORDINATOR_MODEL),
        tools=[get_weather, researcher.as_tool(name="ask_researcher")],
        callback_handler=None,
    )
    coordinator.add_hook(lambda event: counts.invoked("coordinator"), BeforeInvocationEvent)

    def delegate_called(event):
        if event.tool_use["name"] == "ask_researcher":
            counts.delegated("coordinator", "ask_researcher")

    coordinator.add_hook(delegate_called, BeforeToolCallEvent)

    async def streamed():
        async for _ in coordinator.stream_async(scenario.QUESTION):
            pass

    for index in range(args.rounds):
        coordinator.messages.clear()  # each round a fresh conversation
        if counts.streaming(index):
            counts.streamed()
            asyncio.run(streamed())
        else:
            coordinator(scenario.QUESTION)

    scenario.finish(provider, "strands", ["strands-agents", "openai"], counts)


if __name__ == "__main__":
    main()
