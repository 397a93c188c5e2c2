"""The coordinator/researcher scenario on pydantic-ai, traced by pydantic-ai's own
instrumentation (`Agent.instrument_all()`, default InstrumentationSettings). The coordinator
delegates through the tool `ask_researcher`, whose body runs the researcher agent (agent
delegation, sharing the run's usage). Odd rounds use `run`, even rounds `run_stream_events`.
See scenario.py for the command line."""

import asyncio

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from pydantic_ai import Agent, RunContext
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    Agent.instrument_all()
    counts = scenario.Counts()
    openai = OpenAIProvider(base_url=args.openai_base_url, api_key="test")

    researcher = Agent(
        OpenAIChatModel(scenario.RESEARCHER_MODEL, provider=openai),
        name="researcher",
        instructions=scenario.RESEARCHER_INSTRUCTIONS,
    )

    @researcher.tool_plain
    def search_notes(topic: str) -> str:
        """Search the research notes about a topic."""
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    coordinator = Agent(
        OpenAIChatModel(scenario.COORDINATOR_MODEL, provider=openai),
        name="coordinator",
        instructions=scenario.COORDINATOR_INSTRUCTIONS,
    )

    @coordinator.tool_plain
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    @coordinator.tool
    async def ask_researcher(ctx: RunContext[None], question: str) -> str:
        """Ask the researcher agent to look something up in the notes."""
        counts.delegated("coordinator", "ask_researcher")
        counts.invoked("researcher")
        result = await researcher.run(question, usage=ctx.usage)
        return result.output

    async def rounds():
        for index in range(args.rounds):
            counts.invoked("coordinator")
            if counts.streaming(index):
                counts.streamed()
                async with coordinator.run_stream_events(scenario.QUESTION) as events:
                    async for _ in events:
                        pass
            else:
                await coordinator.run(scenario.QUESTION)

    asyncio.run(rounds())
    scenario.finish(provider, "pydantic_ai", ["pydantic-ai-slim", "openai"], counts)


if __name__ == "__main__":
    main()
