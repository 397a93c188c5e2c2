//! Real agent frameworks' spans, counted per agent exactly as the truth says. The spans of each
//! framework (`tests/fixtures/agents/<framework>.json`, captured from the framework itself, see
//! `tests/agents/EMITS.md`) go through normalize and derive; requests, prompt and response
//! tokens per agent and model must equal what the mock OpenAI API served, agent invocations
//! and tool calls per agent what the scenario counted, with the agent graph's edges and no span
//! left unattributed. `agents_live.rs` runs the frameworks themselves against the collector.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agentrace_collector::harness;

/// The agent of each model in the scenario.
pub const AGENT_MODELS: [(&str, &str); 2] = [("coordinator", "gpt-4o"), ("researcher", "gpt-4o-mini")];

/// Frameworks whose every span can be attributed to the right agent. CrewAI runs the delegated
/// researcher inside the coordinator's delegation tool, with no agent span of its own: its
/// calls count per model, not per agent (checked apart).
pub const ATTRIBUTABLE: [&str; 7] =
    ["pydantic_ai", "openai_agents", "strands", "langgraph", "smolagents", "google_adk", "ag2"];

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents")
}

/// `/metrics` classic text as (name, labels) → value.
pub fn parse(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut series = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let Some((key, value)) = line.rsplit_once(' ') else { continue };
        let (name, labels) = match key.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (key, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| pair.split_once("=\""))
            .map(|(label, value)| (label.to_owned(), value.trim_end_matches('"').to_owned()))
            .collect();
        if let Ok(value) = value.parse() {
            series.insert((name.to_owned(), labels), value);
        }
    }
    series
}

/// The sum of `metric` over the series whose labels include every pair of `matching`.
pub fn sum(
    series: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    metric: &str,
    matching: &[(&str, &str)],
) -> f64 {
    series
        .iter()
        .filter(|((name, labels), _)| {
            name == metric
                && matching.iter().all(|(label, value)| labels.get(*label).map(String::as_str) == Some(value))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Distinct values of `label` among the series of `metric`.
fn values_of(
    series: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    metric: &str,
    label: &str,
) -> Vec<String> {
    let mut values: Vec<String> = series
        .keys()
        .filter(|(name, _)| name == metric)
        .filter_map(|(_, labels)| labels.get(label).cloned())
        .collect();
    values.dedup();
    values
}

/// Checks one framework's metrics against its truth; returns what disagrees.
pub fn disagreements(framework: &str, metrics: &str, truth: &serde_json::Value) -> Vec<String> {
    let series = parse(metrics);
    let mut wrong = Vec::new();
    let mut expect = |what: String, actual: f64, expected: f64| {
        if actual != expected {
            wrong.push(format!("{framework}: {what}: {actual}, expected {expected}"));
        }
    };
    let scenario = &truth["scenario"];
    for (agent, model) in AGENT_MODELS {
        let served = &truth["mock"]["models"][model];
        let labels = [("agent", agent), ("model", model)];
        for (metric, figure) in [
            ("llm_requests_total", "requests"),
            ("llm_prompt_tokens_total", "prompt_tokens"),
            ("llm_response_tokens_total", "completion_tokens"),
        ] {
            let expected = served[figure].as_f64().unwrap_or(-1.0);
            expect(format!("{metric} {labels:?}"), sum(&series, metric, &labels), expected);
        }
        let invocations = scenario["invocations"][agent].as_f64().unwrap_or(-1.0);
        expect(
            format!("agent_invocations_total {agent}"),
            sum(&series, "agent_invocations_total", &[("agent", agent)]),
            invocations,
        );
        let edge = [("client", agent), ("server", &format!("model:{model}"))];
        let requests = served["requests"].as_f64().unwrap_or(-1.0);
        expect(
            format!("edge {agent} → model:{model}"),
            sum(&series, "traces_service_graph_request_total", &edge),
            requests,
        );
        for (tool, calls) in expected_tools(framework, scenario, agent) {
            let labels = [("agent", agent), ("tool", tool.as_str())];
            expect(
                format!("agent_tool_calls_total {labels:?}"),
                sum(&series, "agent_tool_calls_total", &labels),
                calls,
            );
            let edge = [("client", agent), ("server", &format!("tool:{tool}"))];
            expect(
                format!("edge {agent} → tool:{tool}"),
                sum(&series, "traces_service_graph_request_total", &edge),
                calls,
            );
        }
    }
    let researcher_runs = scenario["invocations"]["researcher"].as_f64().unwrap_or(-1.0);
    let delegation = [("client", "coordinator"), ("server", "researcher")];
    expect(
        "edge coordinator → researcher".into(),
        sum(&series, "traces_service_graph_request_total", &delegation),
        researcher_runs,
    );
    expect("unresolved spans".into(), sum(&series, "agentrace_attribution_unresolved_total", &[]), 0.0);
    let agents = values_of(&series, "llm_requests_total", "agent");
    if agents != ["coordinator", "researcher"] {
        wrong.push(format!("{framework}: model calls under the agents {agents:?}"));
    }
    let invoked = values_of(&series, "agent_invocations_total", "agent");
    if invoked != ["coordinator", "researcher"] {
        wrong.push(format!("{framework}: invocations of the agents {invoked:?}"));
    }
    wrong
}

/// The tool calls each agent makes: the scenario's tools, the delegation where the framework
/// delegates through a tool, and smolagents' own `final_answer` once per run.
fn expected_tools(framework: &str, scenario: &serde_json::Value, agent: &str) -> Vec<(String, f64)> {
    let counts = |key: &str| -> Vec<(String, f64)> {
        scenario[key][agent]
            .as_object()
            .map(|tools| {
                tools.iter().map(|(tool, calls)| (tool.clone(), calls.as_f64().unwrap_or(-1.0))).collect()
            })
            .unwrap_or_default()
    };
    let mut tools = counts("tool_calls");
    match framework {
        "smolagents" => {
            tools.push(("final_answer".to_owned(), scenario["invocations"][agent].as_f64().unwrap_or(-1.0)))
        }
        _ => tools.extend(counts("delegations")),
    }
    tools
}

fn replay(framework: &str, dir: &Path) -> String {
    let body = std::fs::read(dir.join(format!("{framework}.json"))).expect("fixture");
    harness::replay_json(&[body], None, 1_800_000_000.0)
        .unwrap_or_else(|error| panic!("{framework}: {error}"))
}

fn truth(framework: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(format!("{framework}.truth.json"))).expect("truth");
    serde_json::from_str(&text).expect("truth is JSON")
}

#[test]
fn every_framework_s_calls_tokens_and_tools_count_under_the_right_agent() {
    let wrong: Vec<String> = ATTRIBUTABLE
        .iter()
        .flat_map(|framework| disagreements(framework, &replay(framework, &fixtures()), &truth(framework)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn crewai_s_delegated_calls_count_per_model_under_the_coordinator() {
    let series = parse(&replay("crewai", &fixtures()));
    let truth = truth("crewai");
    for (_, model) in AGENT_MODELS {
        let served = &truth["mock"]["models"][model];
        for (metric, figure) in
            [("llm_requests_total", "requests"), ("llm_prompt_tokens_total", "prompt_tokens")]
        {
            let counted = sum(&series, metric, &[("agent", "coordinator"), ("model", model)]);
            assert_eq!(counted, served[figure].as_f64().expect("figure"), "{metric} {model}");
        }
    }
    assert_eq!(sum(&series, "agent_invocations_total", &[("agent", "coordinator")]), 2.0);
    assert_eq!(sum(&series, "agentrace_attribution_unresolved_total", &[]), 0.0);
}

#[test]
fn strands_first_token_is_read_in_milliseconds() {
    let series = parse(&replay("strands", &fixtures()));
    let first_token = sum(&series, "llm_time_to_first_token_seconds_sum", &[]);
    let latency = sum(&series, "llm_inference_latency_seconds_sum", &[]);
    assert!(
        first_token > 0.0 && first_token <= latency,
        "first token {first_token} s within {latency} s of calls"
    );
    assert_eq!(sum(&series, "agentrace_spans_invalid_total", &[]), 0.0);
}
