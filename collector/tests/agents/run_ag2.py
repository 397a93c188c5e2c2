"""The coordinator/researcher scenario on AG2 (the `ag2` package, Agent with OpenAIConfig on
Chat Completions), traced by AG2's own TelemetryMiddleware (GenAI conventions) on each agent.
The coordinator delegates through the researcher turned into a tool (`Agent.as_tool`, named
`ask_researcher`). Odd rounds use a coordinator config with `streaming=False`, even rounds one
with `streaming=True` (same name, same researcher). See scenario.py for the command line."""

import asyncio

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from ag2 import Agent, tool
    from ag2.config import OpenAIConfig
    from ag2.middleware import BaseMiddleware, TelemetryMiddleware
    from ag2.middleware.base import MiddlewareFactory

    counts = scenario.Counts()

    def config(model, streaming=False):
        return OpenAIConfig(model=model, base_url=args.openai_base_url, api_key="test",
                            streaming=streaming)

    def telemetry(name, model):
        return TelemetryMiddleware(tracer_provider=provider, agent_name=name,
                                   provider_name="openai", model_name=model)

    class CountTurns(MiddlewareFactory):
        """Counts each turn of the agent it is given to."""

        def __init__(self, name):
            self.name = name

        def __call__(self, event, context):
            name = self.name

            class Counting(BaseMiddleware):
                async def on_turn(self, call_next, event, context):
                    counts.invoked(name)
                    return await call_next(event, context)

            return Counting(event, context)

    async def count_delegation(call_next, event, context):
        counts.delegated("coordinator", "ask_researcher")
        return await call_next(event, context)

    @tool
    async def search_notes(topic: str) -> str:
        """Search the research notes about a topic."""
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    @tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    researcher = Agent(
        "researcher",
        prompt=scenario.RESEARCHER_INSTRUCTIONS,
        config=config(scenario.RESEARCHER_MODEL),
        tools=[search_notes],
        middleware=[CountTurns("researcher"),
                    telemetry("researcher", scenario.RESEARCHER_MODEL)],
    )
    delegate = researcher.as_tool(
        name="ask_researcher",
        description="Ask the researcher agent to look something up in the notes.",
        middleware=[count_delegation],
    )

    def coordinator(streaming):
        return Agent(
            "coordinator",
            prompt=scenario.COORDINATOR_INSTRUCTIONS,
            config=config(scenario.COORDINATOR_MODEL, streaming),
            tools=[get_weather, delegate],
            middleware=[CountTurns("coordinator"),
                        telemetry("coordinator", scenario.COORDINATOR_MODEL)],
        )

    plain, streaming = coordinator(False), coordinator(True)

    async def rounds():
        for index in range(args.rounds):
            if counts.streaming(index):
                counts.streamed()
                await streaming.ask(scenario.QUESTION)
            else:
                await plain.ask(scenario.QUESTION)

    asyncio.run(rounds())
    scenario.finish(provider, "ag2", ["ag2", "openai"], counts)


if __name__ == "__main__":
    main()
