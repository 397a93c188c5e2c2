//! What the dialect tables cannot say, per agent framework: rules that apply to the spans of
//! one instrumentation scope, each with the framework version it was seen in. A framework
//! speaks a dialect (GenAI, OpenInference) and these rules correct how its spans read: a
//! duration in the wrong unit, a span that is not what its attributes suggest, an agent named
//! only in the span name. Adding a framework is adding an entry here.

use crate::attr::{self, framework};

/// One rule for a framework's spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// This attribute's time to first token is in milliseconds (the tables read seconds).
    FirstTokenMilliseconds(&'static str),
    /// This attribute's value is the framework's own name, never the model provider.
    NotProvider(&'static str),
    /// An agent span's name is the agent's name followed by this suffix.
    AgentNameSuffix(&'static str),
    /// An agent span of this name and without an agent name is the framework's wrapper around
    /// a run, not an agent.
    NotAnAgent(&'static str),
    /// Spans where this attribute has this value record usage that the model-call span already
    /// carries: never a model call.
    UsageRecord { key: &'static str, value: &'static str },
    /// Every span names its agent inside a JSON object attribute under `key`; a step span
    /// named after its own agent is that agent's invocation.
    AgentInJson { attribute: &'static str, key: &'static str },
}

/// The rules for one instrumentation scope.
#[derive(Debug)]
pub struct Framework {
    /// The instrumentation scope name its spans arrive under.
    pub scope: &'static str,
    /// The framework and version the rules were read off.
    pub seen_in: &'static str,
    pub rules: &'static [Rule],
}

/// Every framework with rules of its own. Frameworks that need none (pydantic-ai, Google ADK,
/// which write the GenAI conventions as they are) are not listed.
pub const FRAMEWORKS: &[Framework] = &[
    Framework {
        scope: "strands.telemetry.tracer",
        seen_in: "strands-agents 1.62.0",
        rules: &[
            Rule::FirstTokenMilliseconds(attr::openlit::SERVER_TIME_TO_FIRST_TOKEN),
            Rule::NotProvider(framework::STRANDS_SYSTEM),
        ],
    },
    Framework {
        scope: "openinference.instrumentation.openai_agents",
        seen_in: "openai-agents 0.24.0, openinference-instrumentation-openai-agents 2.6.0",
        rules: &[Rule::NotAnAgent("Agent workflow")],
    },
    Framework {
        scope: "openinference.instrumentation.smolagents",
        seen_in: "smolagents 1.26.0, openinference-instrumentation-smolagents 0.1.43",
        rules: &[Rule::AgentNameSuffix(".run")],
    },
    Framework {
        scope: "openinference.instrumentation.crewai",
        seen_in: "crewai 1.15.30, openinference-instrumentation-crewai 1.1.21",
        rules: &[Rule::AgentNameSuffix("._execute_core")],
    },
    Framework {
        scope: "openinference.instrumentation.langchain",
        seen_in: "langgraph 1.2.22, langchain 1.5.0, openinference-instrumentation-langchain 0.1.80",
        rules: &[Rule::AgentInJson {
            attribute: framework::LANGCHAIN_METADATA,
            key: framework::LANGCHAIN_AGENT_NAME,
        }],
    },
    Framework {
        scope: "opentelemetry.instrumentation.ag2",
        seen_in: "ag2 1.2.1",
        rules: &[Rule::UsageRecord { key: framework::AG2_SPAN_TYPE, value: framework::AG2_USAGE }],
    },
];

/// The rules for spans of `scope`, if its framework has any.
pub fn framework(scope: &str) -> Option<&'static Framework> {
    FRAMEWORKS.iter().find(|framework| framework.scope == scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_is_listed_once_and_every_framework_has_rules() {
        for (position, entry) in FRAMEWORKS.iter().enumerate() {
            assert!(!entry.rules.is_empty(), "{}", entry.scope);
            assert!(!entry.seen_in.is_empty(), "{}", entry.scope);
            assert!(
                FRAMEWORKS[position + 1..].iter().all(|other| other.scope != entry.scope),
                "{} twice",
                entry.scope
            );
        }
        assert_eq!(
            framework("strands.telemetry.tracer").map(|found| found.seen_in),
            Some("strands-agents 1.62.0")
        );
        assert!(framework("pydantic-ai").is_none());
    }
}
