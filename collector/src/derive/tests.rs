use super::*;
use agentrace_semconv::metric;
use agentrace_semconv::{ErrorType, GenAiFields};

use crate::metrics::Label;
use crate::wire::{span, status as span_status};

use crate::cost::PriceTable;

/// A span of trace 7 with id `[id; 8]`, 2 s long; the attribution tests build on it too.
pub(super) fn span<'a>(
    id: u8,
    parent: Option<u8>,
    class: SpanClass,
    fields: GenAiFields<'a>,
) -> CanonicalSpan<'a> {
    CanonicalSpan {
        service: "svc",
        name: "span",
        kind: span::SpanKind::Internal,
        status: span_status::StatusCode::Unset,
        trace_id: [7; 16],
        span_id: [id; 8],
        parent_span_id: parent.map(|parent| [parent; 8]),
        start_unix_nano: 1_000_000_000,
        end_unix_nano: 3_000_000_000,
        class,
        fields,
        error: None,
        weight: 1.0,
        evaluations: Vec::new(),
        guardrails: Vec::new(),
        remote_agent: None,
        arguments_hash: None,
        linked_span_id: None,
        invalid: Vec::new(),
        timing_valid: true,
    }
}

fn llm(id: u8, parent: Option<u8>) -> CanonicalSpan<'static> {
    span(
        id,
        parent,
        SpanClass::Llm,
        GenAiFields {
            operation: Some("chat"),
            provider: Some("openai"),
            model: Some("gpt-4o"),
            agent: Some("researcher"),
            input_tokens: Some(100),
            output_tokens: Some(30),
            time_to_first_token: Some(0.5),
            ..GenAiFields::default()
        },
    )
}

fn agent(id: u8, parent: Option<u8>, name: &'static str) -> CanonicalSpan<'static> {
    span(id, parent, SpanClass::Agent, GenAiFields { agent: Some(name), ..GenAiFields::default() })
}

fn tool(id: u8, parent: Option<u8>, name: &'static str) -> CanonicalSpan<'static> {
    span(
        id,
        parent,
        SpanClass::Tool,
        GenAiFields { agent: Some("researcher"), tool: Some(name), ..GenAiFields::default() },
    )
}

fn texts(labels: &[Label<'_>]) -> Vec<String> {
    labels.iter().map(ToString::to_string).collect()
}

fn graph_deriver(graph: GraphConfig) -> Deriver {
    Deriver::new(graph, Arc::new(PriceTable::built_in()))
}

fn find<'o, 'a>(out: &'o [Observation<'a>], metric: &str) -> Vec<&'o Observation<'a>> {
    out.iter().filter(|observation| observation.metric == metric).collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

#[test]
fn an_llm_call_yields_requests_latency_tokens_and_speed() {
    let mut out = Vec::new();
    Deriver::default().observe(&llm(1, None), None, 0.0, &mut out);
    let base = strings(&["svc", "researcher", "openai", "gpt-4o"]);
    let requests = find(&out, metric::LLM_REQUESTS_TOTAL);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].labels[..], strings(&["svc", "researcher", "openai", "gpt-4o", "chat", "ok"]));
    assert_eq!(find(&out, metric::LLM_INFERENCE_LATENCY_SECONDS)[0].value, 2.0);
    let prompt = find(&out, metric::LLM_PROMPT_TOKENS_TOTAL);
    assert_eq!((texts(&prompt[0].labels), prompt[0].value), (base.clone(), 100.0));
    assert_eq!(find(&out, metric::LLM_RESPONSE_TOKENS_TOTAL)[0].value, 30.0);
    assert_eq!(find(&out, metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS)[0].value, 0.5);
    assert_eq!(find(&out, metric::LLM_OUTPUT_TOKENS_PER_SECOND)[0].value, 20.0, "30 tokens over 1.5 s");
    assert!(find(&out, metric::LLM_INFERENCE_ERRORS_TOTAL).is_empty());
    let exemplar = requests[0].exemplar.expect("exemplar");
    assert_eq!((exemplar.trace_id, exemplar.span_id, exemplar.timestamp), ([7; 16], [1; 8], 3.0));
    assert_eq!(
        find(&out, metric::SPANMETRICS_LATENCY)[0].labels[2..],
        strings(&["SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET"])
    );
}

#[test]
fn a_failed_call_counts_its_error_type() {
    let mut failing = llm(1, None);
    failing.error = Some(ErrorType::Timeout);
    let mut out = Vec::new();
    Deriver::default().observe(&failing, None, 0.0, &mut out);
    let errors = find(&out, metric::LLM_INFERENCE_ERRORS_TOTAL);
    assert_eq!(errors[0].labels[..], strings(&["svc", "researcher", "openai", "gpt-4o", "timeout"]));
    assert_eq!(find(&out, metric::LLM_REQUESTS_TOTAL)[0].labels[5], "error");
}

#[test]
fn agents_steps_tools_and_model_loads() {
    let mut out = Vec::new();
    let mut deriver = Deriver::default();
    let step = span(
        2,
        Some(1),
        SpanClass::Step,
        GenAiFields { agent: Some("planner"), step: Some("plan"), ..GenAiFields::default() },
    );
    let load =
        span(3, None, SpanClass::ModelLoad, GenAiFields { model: Some("llama"), ..GenAiFields::default() });
    for span in [agent(1, None, "planner"), step, tool(4, Some(1), "calculator"), load] {
        deriver.observe(&span, None, 0.0, &mut out);
    }
    assert_eq!(find(&out, metric::AGENT_INVOCATIONS_TOTAL)[0].labels[..], strings(&["svc", "planner", "ok"]));
    // The step count is read from the duration's samples.
    let steps = find(&out, metric::AGENT_STEP_DURATION_SECONDS);
    assert_eq!(steps[0].labels[..], strings(&["svc", "planner", "plan"]));
    assert_eq!(
        find(&out, metric::AGENT_TOOL_CALLS_TOTAL)[0].labels[..],
        strings(&["svc", "researcher", "calculator", "ok"])
    );
    let load_time = find(&out, metric::LLM_MODEL_LOAD_TIME_SECONDS);
    assert_eq!((texts(&load_time[0].labels), load_time[0].value), (strings(&["svc", "llama"]), 2.0));
}

fn edges(out: &[Observation]) -> Vec<(String, String)> {
    let mut edges: Vec<(String, String)> = find(out, metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS)
        .iter()
        .map(|observation| (observation.labels[0].to_string(), observation.labels[1].to_string()))
        .collect();
    edges.sort();
    edges
}

/// planner(1) ─ step(2) ─ researcher(3) ─┬ web_search(4)
///                                        └ chat(5)
#[test]
fn edges_pair_children_with_their_nearest_agent_whatever_the_arrival_order() {
    let step =
        span(2, Some(1), SpanClass::Step, GenAiFields { step: Some("delegate"), ..GenAiFields::default() });
    let children_first = [
        tool(4, Some(3), "web_search"),
        llm(5, Some(3)),
        agent(3, Some(2), "researcher"),
        step.clone(),
        agent(1, None, "planner"),
    ];
    let expected = vec![
        ("planner".to_owned(), "researcher".to_owned()),
        ("researcher".to_owned(), "model:gpt-4o".to_owned()),
        ("researcher".to_owned(), "tool:web_search".to_owned()),
        ("svc".to_owned(), "planner".to_owned()),
    ];
    let mut deriver = Deriver::default();
    let mut out = Vec::new();
    for (position, span) in children_first.iter().enumerate() {
        deriver.observe(span, None, 0.0, &mut out);
        if position == 1 {
            assert!(edges(&out).is_empty(), "no caller known yet");
        }
    }
    assert_eq!(edges(&out), expected);

    let mut parents_first = children_first;
    parents_first.reverse();
    let mut deriver = Deriver::default();
    let mut out = Vec::new();
    for span in &parents_first {
        deriver.observe(span, None, 0.0, &mut out);
    }
    assert_eq!(edges(&out), expected);
}

#[test]
fn a_failed_callee_counts_a_failed_edge() {
    let mut failing_tool = tool(2, Some(1), "web_search");
    failing_tool.error = Some(ErrorType::Timeout);
    let mut deriver = Deriver::default();
    let mut out = Vec::new();
    deriver.observe(&agent(1, None, "researcher"), None, 0.0, &mut out);
    deriver.observe(&failing_tool, None, 0.0, &mut out);
    let failed = find(&out, metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].labels[..], strings(&["researcher", "tool:web_search", "", "svc", "svc"]));
}

#[test]
fn roll_ups_and_unpaired_edges_come_out_when_the_window_passes() {
    let mut deriver = graph_deriver(GraphConfig { wait_secs: 10.0, ..GraphConfig::default() });
    let mut out = Vec::new();
    let orphan = tool(9, Some(99), "calculator");
    for span in [
        llm(2, Some(1)),
        llm(3, Some(1)),
        tool(4, Some(1), "web_search"),
        agent(1, None, "researcher"),
        orphan,
    ] {
        deriver.observe(&span, None, 100.0, &mut out);
    }
    out.clear();
    deriver.tick(109.0, &mut out);
    let gauges = [
        metric::SELF_ATTRIBUTION_PENDING_SPANS,
        metric::SELF_GRAPH_BYTES,
        metric::SELF_GRAPH_MAX_BYTES,
        metric::SELF_CONVERSATIONS_OPEN,
    ];
    let only_the_gauges = out.iter().all(|observation| gauges.contains(&observation.metric));
    assert!(only_the_gauges, "still inside the window: {out:?}");
    deriver.tick(110.0, &mut out);
    let value = |metric: &str| find(&out, metric).first().map(|observation| observation.value);
    assert_eq!(value(metric::AGENT_INVOCATION_LLM_CALLS), Some(2.0));
    assert_eq!(value(metric::AGENT_INVOCATION_TOOL_CALLS), Some(1.0));
    assert_eq!(value(metric::AGENT_INVOCATION_TOKENS), Some(260.0));
    assert_eq!(value(metric::SELF_GRAPH_UNPAIRED_TOTAL), Some(1.0));
    assert_eq!(deriver.open_traces(), 0);
}

#[test]
fn the_window_is_bounded_by_trace_count() {
    let mut deriver = graph_deriver(GraphConfig { max_traces: 3, ..GraphConfig::default() });
    let mut out = Vec::new();
    for trace in 0..10u8 {
        let mut orphan = tool(1, Some(2), "t");
        orphan.trace_id = [trace; 16];
        deriver.observe(&orphan, None, 0.0, &mut out);
    }
    assert_eq!(deriver.open_traces(), 3);
    let unpaired: f64 =
        find(&out, metric::SELF_GRAPH_UNPAIRED_TOTAL).iter().map(|observation| observation.value).sum();
    assert_eq!(unpaired, 7.0, "evicted traces count their waiting edges");
}

#[test]
fn the_window_is_bounded_by_bytes() {
    let max_bytes = 1 << 20;
    let mut deriver = graph_deriver(GraphConfig { max_bytes, ..GraphConfig::default() });
    let mut out = Vec::new();
    // 20 traces of 500 tool calls whose parent never arrives: far more than 1 MiB.
    for trace in 0..20u8 {
        for n in 0..500u64 {
            let mut orphan = tool(1, Some(2), "t");
            orphan.trace_id = [trace; 16];
            orphan.span_id = (n + 10).to_be_bytes();
            deriver.observe(&orphan, None, 0.0, &mut out);
            assert!(deriver.graph_bytes() <= max_bytes, "{} bytes", deriver.graph_bytes());
        }
    }
    assert!(deriver.open_traces() < 20, "the oldest traces closed early");
    let unpaired: f64 =
        find(&out, metric::SELF_GRAPH_UNPAIRED_TOTAL).iter().map(|observation| observation.value).sum();
    deriver.tick(100.0, &mut out);
    let all_unpaired: f64 =
        find(&out, metric::SELF_GRAPH_UNPAIRED_TOTAL).iter().map(|observation| observation.value).sum();
    assert!(unpaired > 0.0, "evicted traces count their waiting edges");
    assert_eq!(all_unpaired, 10_000.0, "every edge counted once, evicted or expired");
    assert_eq!(deriver.graph_bytes(), 0, "nothing left after the window closed");
}

/// 1 000 calls wait for a step that waits for its agent: each arrival moves them one link up
/// the chain, and the agent's arrival settles them all.
#[test]
fn what_waits_for_a_missing_span_settles_when_it_and_its_chain_arrive() {
    let mut deriver = graph_deriver(GraphConfig::default());
    let mut out = Vec::new();
    for n in 0..1_000u64 {
        let mut call = llm(0, Some(2));
        call.span_id = (n + 1_000).to_be_bytes();
        call.fields.agent = None;
        deriver.observe(&call, None, 0.0, &mut out);
    }
    let waiting_bytes = deriver.graph_bytes();
    deriver.observe(&span(2, Some(1), SpanClass::Step, GenAiFields::default()), None, 0.0, &mut out);
    assert!(find(&out, metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS).is_empty(), "still no agent");
    deriver.observe(&agent(1, None, "researcher"), None, 0.0, &mut out);
    let edges: f64 = find(&out, metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS)
        .iter()
        .map(|observation| observation.weight)
        .sum();
    assert_eq!(edges, 1_001.0, "1 000 model edges and the agent's root edge");
    let requests = find(&out, metric::LLM_REQUESTS_TOTAL);
    let attributed = requests.iter().filter(|observation| observation.labels[1] == "researcher").count();
    assert_eq!(attributed, 1_000, "each call counted under the agent");
    assert!(deriver.graph_bytes() < waiting_bytes, "the waiters' room is given back");
    deriver.tick(100.0, &mut out);
    let calls: f64 =
        find(&out, metric::AGENT_INVOCATION_LLM_CALLS).iter().map(|observation| observation.value).sum();
    assert_eq!(calls, 1_000.0, "all in the invocation's roll-up");
}

/// An agent with 200 LLM calls, past the few spans a trace's nodes hold in a vector. Sent
/// twice, the second copy changes nothing in the graph. With a cap of 50 spans a trace, the
/// agent span (sent last) does not get in, so the 50 calls that did never pair.
#[test]
fn a_large_trace_pairs_every_child_once_and_stops_at_its_span_cap() {
    let calls: Vec<CanonicalSpan<'static>> = (0..200u8).map(|id| llm(id + 2, Some(1))).collect();
    let run = |graph: GraphConfig, rounds: usize| {
        let mut deriver = graph_deriver(graph);
        let mut out = Vec::new();
        for _ in 0..rounds {
            for call in &calls {
                deriver.observe(call, None, 0.0, &mut out);
            }
            deriver.observe(&agent(1, None, "researcher"), None, 0.0, &mut out);
        }
        deriver.tick(100.0, &mut out);
        let total =
            |metric: &str| find(&out, metric).iter().map(|observation| observation.value).sum::<f64>();
        let samples =
            |metric: &str| find(&out, metric).iter().map(|observation| observation.weight).sum::<f64>();
        (
            samples(metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS),
            total(metric::AGENT_INVOCATION_LLM_CALLS),
            total(metric::SELF_GRAPH_UNPAIRED_TOTAL),
        )
    };
    // 200 model edges and the root edge; 200 calls in the roll-up.
    assert_eq!(run(GraphConfig::default(), 1), (201.0, 200.0, 0.0));
    assert_eq!(run(GraphConfig::default(), 2), (201.0, 200.0, 0.0), "a resend counts once");
    // The first 50 spans are calls whose agent never gets in: 50 unpaired edges, no roll-up.
    let capped = GraphConfig { max_spans_per_trace: 50, ..GraphConfig::default() };
    assert_eq!(run(capped, 1), (0.0, 0.0, 50.0));
}

#[test]
fn an_llm_call_costs_its_tokens_at_the_table_price() {
    let mut call = llm(1, None);
    call.fields.cached_input_tokens = Some(60);
    let mut out = Vec::new();
    let outcome = Deriver::default().observe(&call, None, 0.0, &mut out);
    // gpt-4o: (100 − 60) × 2.50 + 60 × 1.25 + 30 × 10.00 = 100 + 75 + 300 = 475 per million.
    let expected = 475.0 / 1e6;
    assert!((outcome.cost_usd.expect("cost") - expected).abs() < 1e-12);
    let cost = find(&out, metric::LLM_COST_USD_TOTAL);
    assert_eq!(cost[0].labels[..], strings(&["svc", "researcher", "openai", "gpt-4o"]));
    assert!((cost[0].value - expected).abs() < 1e-12);
}

#[test]
fn a_call_without_usage_has_no_cost() {
    let mut call = llm(1, None);
    call.fields.input_tokens = None;
    call.fields.output_tokens = None;
    let mut out = Vec::new();
    assert_eq!(Deriver::default().observe(&call, None, 0.0, &mut out).cost_usd, None);
    assert!(find(&out, metric::LLM_COST_USD_TOTAL).is_empty());
}

#[test]
fn evaluations_and_sampling_weights_reach_the_observations() {
    let mut call = llm(1, None);
    call.evaluations = vec![("relevance", 0.8)];
    call.weight = 4.0;
    let mut out = Vec::new();
    Deriver::default().observe(&call, None, 0.0, &mut out);
    let evaluation = find(&out, metric::LLM_EVALUATION_SCORE);
    assert_eq!((texts(&evaluation[0].labels), evaluation[0].value), (strings(&["svc", "relevance"]), 0.8));
    assert!(out
        .iter()
        .filter(|observation| observation.metric != metric::LLM_MODEL_LOAD_TIME_SECONDS)
        .all(|observation| observation.weight == 4.0));
}
