"""The coordinator/researcher scenario on the OpenAI Agents SDK (Chat Completions models),
traced by openinference-instrumentation-openai-agents (its processor replaces the SDK's own
exporter, so nothing is sent to OpenAI). The coordinator delegates through the researcher
turned into a tool (`Agent.as_tool`, named `ask_researcher`). Odd rounds use `Runner.run`, even
rounds `Runner.run_streamed`. Both agents set `ModelSettings(include_usage=True)`: without it
the SDK streams Chat Completions without `stream_options.include_usage`, and streamed
generations carry no token counts. See scenario.py for the command line."""

import asyncio

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)

    from agents import Agent, AgentHooks, ModelSettings, RunHooks, Runner, function_tool
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
    from openai import AsyncOpenAI

    counts = scenario.Counts()
    client = AsyncOpenAI(base_url=args.openai_base_url, api_key="test")

    class Invocations(AgentHooks):
        def __init__(self, name):
            self.name = name

        async def on_start(self, context, agent):
            counts.invoked(self.name)

    class DelegateCalls(RunHooks):
        async def on_tool_start(self, context, agent, tool):
            if tool.name == "ask_researcher":
                counts.delegated("coordinator", "ask_researcher")

    @function_tool
    def search_notes(topic: str) -> str:
        """Search the research notes about a topic."""
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    researcher = Agent(
        name="researcher",
        instructions=scenario.RESEARCHER_INSTRUCTIONS,
        model=OpenAIChatCompletionsModel(scenario.RESEARCHER_MODEL, openai_client=client),
        tools=[search_notes],
        model_settings=ModelSettings(include_usage=True),
        hooks=Invocations("researcher"),
    )
    coordinator = Agent(
        name="coordinator",
        instructions=scenario.COORDINATOR_INSTRUCTIONS,
        model=OpenAIChatCompletionsModel(scenario.COORDINATOR_MODEL, openai_client=client),
        tools=[
            get_weather,
            researcher.as_tool(
                tool_name="ask_researcher",
                tool_description="Ask the researcher agent to look something up in the notes.",
            ),
        ],
        model_settings=ModelSettings(include_usage=True),
        hooks=Invocations("coordinator"),
    )

    async def rounds():
        for index in range(args.rounds):
            if counts.streaming(index):
                counts.streamed()
                result = Runner.run_streamed(coordinator, scenario.QUESTION, hooks=DelegateCalls())
                async for _ in result.stream_events():
                    pass
            else:
                await Runner.run(coordinator, scenario.QUESTION, hooks=DelegateCalls())

    asyncio.run(rounds())
    scenario.finish(
        provider, "openai_agents",
        ["openai-agents", "openinference-instrumentation-openai-agents", "openai"], counts)


if __name__ == "__main__":
    main()
