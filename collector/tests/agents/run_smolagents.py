"""The coordinator/researcher scenario on smolagents (ToolCallingAgent with OpenAIModel),
traced by openinference-instrumentation-smolagents. The researcher is a managed agent of the
coordinator (it appears to the coordinator's model as the tool `researcher`); each agent ends
through smolagents' `final_answer` tool. Odd rounds run a coordinator built with
`stream_outputs=False`, even rounds one built with `stream_outputs=True` (same name, same
researcher). See scenario.py for the command line."""

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    SmolagentsInstrumentor().instrument(tracer_provider=provider)

    from smolagents import OpenAIModel, ToolCallingAgent, tool

    counts = scenario.Counts()

    class Counted(ToolCallingAgent):
        """A ToolCallingAgent whose calls as a managed agent are counted."""

        def __call__(self, *call_args, **kwargs):
            counts.delegated("coordinator", self.name)
            counts.invoked(self.name)
            return super().__call__(*call_args, **kwargs)

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

    def model(name):
        return OpenAIModel(model_id=name, api_base=args.openai_base_url, api_key="test")

    researcher = Counted(
        tools=[search_notes],
        model=model(scenario.RESEARCHER_MODEL),
        name="researcher",
        description="Looks things up in the research notes.",
        instructions=scenario.RESEARCHER_INSTRUCTIONS,
        verbosity_level=0,
    )

    def coordinator(streaming):
        return ToolCallingAgent(
            tools=[get_weather],
            model=model(scenario.COORDINATOR_MODEL),
            managed_agents=[researcher],
            name="coordinator",
            instructions=scenario.COORDINATOR_INSTRUCTIONS,
            stream_outputs=streaming,
            verbosity_level=0,
        )

    plain, streaming = coordinator(False), coordinator(True)
    for index in range(args.rounds):
        counts.invoked("coordinator")
        if counts.streaming(index):
            counts.streamed()
            streaming.run(scenario.QUESTION)
        else:
            plain.run(scenario.QUESTION)

    scenario.finish(
        provider, "smolagents",
        ["smolagents", "openinference-instrumentation-smolagents", "openai"], counts)


if __name__ == "__main__":
    main()
