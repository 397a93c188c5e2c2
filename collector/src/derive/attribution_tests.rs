//! Attribution from the trace: spans that do not name their agent count under the nearest
//! enclosing agent span, whatever order they arrive in, within bounds.

use std::sync::Arc;

use agentrace_semconv::metric::{self, invalid as invalid_reason, unresolved};
use agentrace_semconv::{GenAiFields, SpanClass};

use super::tests::span;
use super::*;

/// A call that does not name its agent.
fn call(id: u8, parent: u8) -> CanonicalSpan<'static> {
    let fields = GenAiFields {
        operation: Some("chat"),
        model: Some("gpt-4o"),
        input_tokens: Some(100),
        output_tokens: Some(10),
        ..GenAiFields::default()
    };
    span(id, Some(parent), SpanClass::Llm, fields)
}

fn agent(id: u8, parent: Option<u8>, name: &'static str) -> CanonicalSpan<'static> {
    span(id, parent, SpanClass::Agent, GenAiFields { agent: Some(name), ..GenAiFields::default() })
}

fn deriver(config: GraphConfig) -> Deriver {
    Deriver::new(config, Arc::new(PriceTable::built_in()))
}

/// Prompt tokens counted per agent label.
fn prompt_tokens_by_agent(out: &[Observation]) -> Vec<(String, f64)> {
    let mut found: Vec<(String, f64)> = out
        .iter()
        .filter(|observation| observation.metric == metric::LLM_PROMPT_TOKENS_TOTAL)
        .map(|observation| (observation.labels[1].to_string(), observation.value))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn total(out: &[Observation], metric: &str) -> f64 {
    out.iter().filter(|observation| observation.metric == metric).map(|observation| observation.value).sum()
}

fn pending(out: &[Observation]) -> Option<f64> {
    out.iter()
        .rev()
        .find(|observation| observation.metric == metric::SELF_ATTRIBUTION_PENDING_SPANS)
        .map(|gauge| gauge.value)
}

#[test]
fn a_call_that_arrives_before_its_agent_waits_and_counts_under_it() {
    let mut deriver = deriver(GraphConfig::default());
    let mut out = Vec::new();
    // One request: the call, under a step whose agent comes in the next request.
    let step = span(3, Some(1), SpanClass::Step, GenAiFields { step: Some("act"), ..GenAiFields::default() });
    deriver.observe(&call(2, 3), None, 0.0, &mut out);
    deriver.observe(&step, None, 0.0, &mut out);
    assert!(prompt_tokens_by_agent(&out).is_empty(), "nothing counted while the agent is unknown");
    deriver.tick(1.0, &mut out);
    assert_eq!(pending(&out), Some(2.0), "the call and the step wait");
    deriver.observe(&agent(1, None, "researcher"), None, 2.0, &mut out);
    assert_eq!(prompt_tokens_by_agent(&out), vec![("researcher".to_owned(), 100.0)]);
    let steps: Vec<String> = out
        .iter()
        .filter(|observation| observation.metric == metric::AGENT_STEP_DURATION_SECONDS)
        .map(|observation| observation.labels[1].to_string())
        .collect();
    assert_eq!(steps, vec!["researcher"]);
    let counted =
        out.iter().find(|observation| observation.metric == metric::LLM_REQUESTS_TOTAL).expect("a request");
    assert_eq!(counted.exemplar.map(|exemplar| exemplar.span_id), Some([2; 8]), "the exemplar is the call's");
    deriver.tick(3.0, &mut out);
    assert_eq!(pending(&out), Some(0.0));
    assert_eq!(total(&out, metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL), 0.0);
}

#[test]
fn a_call_whose_agent_is_known_counts_at_once_and_one_at_the_root_has_no_agent() {
    let mut deriver = deriver(GraphConfig::default());
    let mut out = Vec::new();
    deriver.observe(&agent(1, None, "planner"), None, 0.0, &mut out);
    deriver.observe(&call(2, 1), None, 0.0, &mut out);
    assert_eq!(prompt_tokens_by_agent(&out), vec![("planner".to_owned(), 100.0)], "before the batch ends");
    out.clear();
    let mut root_call = call(3, 0);
    root_call.parent_span_id = None;
    root_call.trace_id = [8; 16];
    deriver.observe(&root_call, None, 0.0, &mut out);
    assert_eq!(
        prompt_tokens_by_agent(&out),
        vec![(String::new(), 100.0)],
        "no agent above it, and none missing"
    );
    deriver.tick(100.0, &mut out);
    assert_eq!(total(&out, metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL), 0.0);
}

#[test]
fn a_call_whose_agent_never_arrives_counts_without_one_after_the_wait() {
    let config = GraphConfig { wait_secs: 10.0, attribution_wait_secs: 5.0, ..GraphConfig::default() };
    let mut deriver = deriver(config);
    let mut out = Vec::new();
    deriver.observe(&call(2, 1), None, 100.0, &mut out);
    deriver.tick(104.0, &mut out);
    assert!(prompt_tokens_by_agent(&out).is_empty(), "still waiting");
    deriver.tick(105.0, &mut out);
    assert_eq!(prompt_tokens_by_agent(&out), vec![(String::new(), 100.0)]);
    let unresolved: Vec<(String, f64)> = out
        .iter()
        .filter(|observation| observation.metric == metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL)
        .map(|observation| (observation.labels[0].to_string(), observation.value))
        .collect();
    assert_eq!(unresolved, vec![(unresolved::WAIT_EXPIRED.to_owned(), 1.0)]);
    assert_eq!(pending(&out), Some(0.0));
}

#[test]
fn waiting_spans_are_bounded_and_the_overflow_is_counted() {
    let config = GraphConfig { max_pending_spans: 1_000, ..GraphConfig::default() };
    let mut deriver = deriver(config);
    let mut out = Vec::new();
    let mut most_pending = 0.0f64;
    for trace in 0..100_000u32 {
        let mut orphan = call(2, 1);
        orphan.trace_id[..4].copy_from_slice(&trace.to_be_bytes());
        deriver.observe(&orphan, None, 0.0, &mut out);
        if trace % 10_000 == 0 {
            deriver.tick(0.0, &mut out);
            most_pending = most_pending.max(pending(&out).unwrap_or(0.0));
            out.clear();
        }
    }
    deriver.tick(0.0, &mut out);
    most_pending = most_pending.max(pending(&out).unwrap_or(0.0));
    assert!(most_pending <= 1_000.0, "{most_pending} waiting");
    assert_eq!(pending(&out), Some(1_000.0));
    let mut all = Vec::new();
    deriver.tick(1_000.0, &mut all);
    assert_eq!(pending(&all), Some(0.0), "the window closed: none waits");
}

#[test]
fn the_evicted_are_counted_as_unresolved() {
    let config = GraphConfig { max_pending_spans: 10, ..GraphConfig::default() };
    let mut deriver = deriver(config);
    let mut out = Vec::new();
    for trace in 0..25u8 {
        let mut orphan = call(2, 1);
        orphan.trace_id = [trace; 16];
        deriver.observe(&orphan, None, 0.0, &mut out);
    }
    let evicted: f64 = out
        .iter()
        .filter(|observation| observation.metric == metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL)
        .filter(|observation| observation.labels[0] == unresolved::EVICTED)
        .map(|observation| observation.value)
        .sum();
    assert_eq!(evicted, 15.0);
    let counted: f64 = prompt_tokens_by_agent(&out)
        .iter()
        .map(|(agent, tokens)| {
            assert_eq!(agent, "", "no agent arrived");
            tokens
        })
        .sum();
    assert_eq!(counted, 1_500.0, "evicted spans still count");
}

#[test]
fn what_normalize_found_impossible_is_counted_invalid_and_the_call_still_counts() {
    let mut late = call(2, 1);
    late.fields.agent = Some("planner");
    late.invalid = vec![invalid_reason::FIRST_TOKEN_AFTER_END, invalid_reason::TOKENS_OVER_CEILING];
    let mut out = Vec::new();
    deriver(GraphConfig::default()).observe(&late, None, 0.0, &mut out);
    assert_eq!(total(&out, metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS), 0.0);
    assert_eq!(total(&out, metric::SELF_SPANS_INVALID_TOTAL), 2.0);
    assert_eq!(total(&out, metric::LLM_REQUESTS_TOTAL), 1.0, "the call itself still counts");
}
