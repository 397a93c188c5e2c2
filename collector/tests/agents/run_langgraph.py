"""The coordinator/researcher scenario on LangGraph agents (LangChain's `create_agent`, a
compiled LangGraph graph) with langchain-openai's ChatOpenAI, traced by
openinference-instrumentation-langchain. The coordinator delegates through the tool
`ask_researcher`, whose body invokes the researcher graph (agent as a tool). Both models set
`stream_usage=True`: with a custom base URL ChatOpenAI leaves it off, and streamed calls then
carry no token counts. Odd rounds use `invoke`, even rounds `stream(stream_mode="messages")`.
See scenario.py for the command line."""

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)

    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    counts = scenario.Counts()

    def model(name):
        return ChatOpenAI(model=name, base_url=args.openai_base_url, api_key="test",
                          stream_usage=True)

    @tool
    def search_notes(topic: str) -> str:
        """Search the research notes about a topic."""
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    researcher = create_agent(
        model(scenario.RESEARCHER_MODEL),
        tools=[search_notes],
        system_prompt=scenario.RESEARCHER_INSTRUCTIONS,
        name="researcher",
    )

    @tool
    def ask_researcher(question: str) -> str:
        """Ask the researcher agent to look something up in the notes."""
        counts.delegated("coordinator", "ask_researcher")
        counts.invoked("researcher")
        result = researcher.invoke({"messages": [{"role": "user", "content": question}]})
        return result["messages"][-1].content

    coordinator = create_agent(
        model(scenario.COORDINATOR_MODEL),
        tools=[get_weather, ask_researcher],
        system_prompt=scenario.COORDINATOR_INSTRUCTIONS,
        name="coordinator",
    )

    for index in range(args.rounds):
        counts.invoked("coordinator")
        request = {"messages": [{"role": "user", "content": scenario.QUESTION}]}
        if counts.streaming(index):
            counts.streamed()
            for _ in coordinator.stream(request, stream_mode="messages"):
                pass
        else:
            coordinator.invoke(request)

    scenario.finish(
        provider, "langgraph",
        ["langgraph", "langchain", "langchain-core", "langchain-openai",
         "openinference-instrumentation-langchain", "openai"], counts)


if __name__ == "__main__":
    main()
