"""The coordinator/researcher scenario on Google's Agent Development Kit (LlmAgent with the
LiteLlm model wrapper, `openai/<model>` against the OpenAI-compatible server), traced by ADK's
built-in OpenTelemetry tracing on the global TracerProvider. The coordinator delegates through
the researcher wrapped as an `AgentTool` (named after the agent, `researcher`). Each round is
one `Runner.run_async` in a new session; even rounds use `StreamingMode.SSE`. See scenario.py
for the command line."""

import asyncio

import scenario


def main():
    args = scenario.parse_args(__doc__.split("\n")[0])
    provider = scenario.setup_tracing(args)

    from google.adk.agents import LlmAgent
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.runners import InMemoryRunner
    from google.adk.tools.agent_tool import AgentTool
    from google.genai import types

    counts = scenario.Counts()

    def search_notes(topic: str) -> str:
        """Search the research notes about a topic."""
        counts.tool("researcher", "search_notes")
        return scenario.NOTES_RESULT

    def get_weather(city: str) -> str:
        """The current weather in a city."""
        counts.tool("coordinator", "get_weather")
        return scenario.WEATHER_RESULT

    def model(name):
        return LiteLlm(model="openai/" + name, api_base=args.openai_base_url, api_key="test")

    def before_agent(callback_context):
        counts.invoked(callback_context.agent_name)

    def before_tool(tool, args, tool_context):
        if tool.name == "researcher":
            counts.delegated("coordinator", tool.name)

    researcher = LlmAgent(
        name="researcher",
        model=model(scenario.RESEARCHER_MODEL),
        description="Looks things up in the research notes.",
        instruction=scenario.RESEARCHER_INSTRUCTIONS,
        tools=[search_notes],
        before_agent_callback=before_agent,
    )
    coordinator = LlmAgent(
        name="coordinator",
        model=model(scenario.COORDINATOR_MODEL),
        instruction=scenario.COORDINATOR_INSTRUCTIONS,
        tools=[get_weather, AgentTool(agent=researcher)],
        before_agent_callback=before_agent,
        before_tool_callback=before_tool,
    )
    runner = InMemoryRunner(agent=coordinator, app_name="agents")

    async def rounds():
        for index in range(args.rounds):
            session = await runner.session_service.create_session(
                app_name="agents", user_id="user")
            config = RunConfig()
            if counts.streaming(index):
                counts.streamed()
                config = RunConfig(streaming_mode=StreamingMode.SSE)
            message = types.Content(role="user", parts=[types.Part(text=scenario.QUESTION)])
            async for _ in runner.run_async(user_id="user", session_id=session.id,
                                            new_message=message, run_config=config):
                pass

    asyncio.run(rounds())
    scenario.finish(provider, "google_adk", ["google-adk", "litellm", "openai"], counts)


if __name__ == "__main__":
    main()
