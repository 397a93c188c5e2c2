"""The coordinator/researcher scenario on CrewAI (its native OpenAI provider), traced by
openinference-instrumentation-crewai (crew, task, agent and tool spans) together with
openinference-instrumentation-openai (the model calls, which the CrewAI instrumentor leaves
to the instrumentor of the LLM client). One crew, one task for the coordinator
(`allow_delegation=True`), so the coordinator delegates through CrewAI's coworker tools; the
researcher is an agent of the same crew with no task of its own. Each round is one
`Crew.kickoff`; even rounds use a coordinator LLM with `stream=True`. CrewAI's own telemetry and
trace upload are turned off. See scenario.py for the command line."""

import os

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    CrewAIInstrumentor().instrument(tracer_provider=provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    from crewai import LLM, Agent, Crew, Process, Task
    from crewai.events import AgentExecutionStartedEvent, ToolUsageStartedEvent, crewai_event_bus
    from crewai.tools import tool

    counts = scenario.Counts()

    @crewai_event_bus.on(AgentExecutionStartedEvent)
    def agent_started(source, event):
        counts.invoked(event.agent.role)

    @crewai_event_bus.on(ToolUsageStartedEvent)
    def tool_started(source, event):
        if "coworker" in event.tool_name.lower():
            counts.delegated("coordinator", event.tool_name)

    @tool("search_notes")
    def search_notes(topic: str) -> str:
        """Search the research notes about a topic."""
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    @tool("get_weather")
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    def llm(name, stream=False):
        return LLM(model=name, base_url=args.openai_base_url, api_key="test", stream=stream)

    researcher = Agent(
        role="researcher",
        goal="Find notes about a topic.",
        backstory=scenario.RESEARCHER_INSTRUCTIONS,
        llm=llm(scenario.RESEARCHER_MODEL),
        tools=[search_notes],
        allow_delegation=False,
        verbose=False,
    )

    def crew(streaming):
        coordinator = Agent(
            role="coordinator",
            goal="Answer the question.",
            backstory=scenario.COORDINATOR_INSTRUCTIONS,
            llm=llm(scenario.COORDINATOR_MODEL, stream=streaming),
            tools=[get_weather],
            allow_delegation=True,
            verbose=False,
        )
        task = Task(description=scenario.QUESTION, expected_output="A short answer.",
                    agent=coordinator)
        return Crew(agents=[coordinator, researcher], tasks=[task],
                    process=Process.sequential, verbose=False)

    for index in range(args.rounds):
        if counts.streaming(index):
            counts.streamed()
            crew(True).kickoff()
        else:
            crew(False).kickoff()

    scenario.finish(
        provider, "crewai",
        ["crewai", "openinference-instrumentation-crewai", "openinference-instrumentation-openai",
         "openai"], counts)
    os._exit(0)  # CrewAI leaves non-daemon threads behind


if __name__ == "__main__":
    main()
