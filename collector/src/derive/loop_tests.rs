//! Runaway loops: repeated tool calls, delegation cycles, context growth.

use agentrace_semconv::metric::{self, loop_kind};
use agentrace_semconv::{GenAiFields, SpanClass};

use super::tests::span;
use super::*;

fn agent(id: u8, parent: Option<u8>, name: &'static str) -> CanonicalSpan<'static> {
    span(id, parent, SpanClass::Agent, GenAiFields { agent: Some(name), ..GenAiFields::default() })
}

fn tool(id: u8, arguments: Option<u64>) -> CanonicalSpan<'static> {
    let fields = GenAiFields { tool: Some("search"), ..GenAiFields::default() };
    CanonicalSpan { arguments_hash: arguments, ..span(id, Some(1), SpanClass::Tool, fields) }
}

fn chat(id: u8, start_second: u64, prompt: u64) -> CanonicalSpan<'static> {
    let fields = GenAiFields { model: Some("m"), input_tokens: Some(prompt), ..GenAiFields::default() };
    let call = span(id, Some(1), SpanClass::Llm, fields);
    CanonicalSpan { start_unix_nano: start_second * 1_000_000_000, end_unix_nano: 100_000_000_000, ..call }
}

/// `(agent, kind)` of every loop counted once the trace closed.
fn loops(spans: Vec<CanonicalSpan<'static>>) -> Vec<(String, String)> {
    let mut deriver = Deriver::default();
    let mut out = Vec::new();
    for span in &spans {
        deriver.observe(span, None, 0.0, &mut out);
    }
    deriver.tick(1e9, &mut out);
    let mut found: Vec<(String, String)> = out
        .iter()
        .filter(|observation| observation.metric == metric::AGENT_LOOP_DETECTED_TOTAL)
        .map(|observation| (observation.labels[1].to_string(), observation.labels[2].to_string()))
        .collect();
    found.sort();
    found
}

fn planner(kind: &str) -> Vec<(String, String)> {
    vec![("planner".to_owned(), kind.to_owned())]
}

#[test]
fn the_same_tool_with_the_same_arguments_three_times_is_a_loop() {
    let with = |arguments: &[u64]| {
        let mut spans = vec![agent(1, None, "planner")];
        spans.extend(arguments.iter().enumerate().map(|(index, hash)| tool(index as u8 + 2, Some(*hash))));
        loops(spans)
    };
    assert_eq!(with(&[7, 7, 7]), planner(loop_kind::REPEATED_TOOL_CALL));
    assert!(with(&[7, 7]).is_empty());
    assert!(with(&[7, 8, 7, 9]).is_empty(), "other arguments are other calls");
}

#[test]
fn without_captured_arguments_twice_the_repeats_are_needed() {
    let with = |calls: u8| {
        let mut spans = vec![agent(1, None, "planner")];
        spans.extend((0..calls).map(|index| tool(index + 2, None)));
        loops(spans)
    };
    assert!(with(5).is_empty());
    assert_eq!(with(6), planner(loop_kind::REPEATED_TOOL_CALL));
}

#[test]
fn an_agent_invoked_again_under_itself_through_another_is_a_cycle() {
    let cycle =
        loops(vec![agent(3, Some(2), "planner"), agent(2, Some(1), "researcher"), agent(1, None, "planner")]);
    assert_eq!(cycle, planner(loop_kind::DELEGATION_CYCLE));
    let recursion = loops(vec![agent(2, Some(1), "planner"), agent(1, None, "planner")]);
    assert!(
        recursion.is_empty(),
        "an agent calling itself directly is recursion, not a cycle between agents"
    );
}

#[test]
fn a_later_call_sending_more_than_four_times_the_first_prompt_is_context_growth() {
    // Arriving out of order: the first call is the earliest started.
    let grew = loops(vec![agent(1, None, "planner"), chat(3, 20, 450), chat(2, 10, 100), chat(4, 30, 200)]);
    assert_eq!(grew, planner(loop_kind::CONTEXT_GROWTH));
    let steady = loops(vec![agent(1, None, "planner"), chat(2, 10, 100), chat(3, 20, 400)]);
    assert!(steady.is_empty());
}
