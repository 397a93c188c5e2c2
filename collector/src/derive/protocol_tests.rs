//! Conventions v0.1.0 in derive: cache and reasoning counters, missing usage, guardrail
//! results, MCP operations, A2A edges, and one call seen twice counted once.

use std::borrow::Cow;

use agentrace_semconv::metric;
use agentrace_semconv::{GenAiFields, SpanClass};

use std::sync::Arc;

use super::tests::span;
use super::*;
use crate::wire::span::SpanKind;

fn total(out: &[Observation], metric: &str) -> f64 {
    out.iter().filter(|observation| observation.metric == metric).map(|observation| observation.value).sum()
}

fn labels_of(out: &[Observation], metric: &str) -> Vec<Vec<String>> {
    out.iter()
        .filter(|observation| observation.metric == metric)
        .map(|observation| observation.labels.iter().map(ToString::to_string).collect())
        .collect()
}

/// Graph edges from the agent `planner` (the root agent's own edge from its service left out).
fn edges_from_planner(out: &[Observation]) -> Vec<Vec<String>> {
    let mut edges: Vec<Vec<String>> = labels_of(out, metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS)
        .into_iter()
        .filter(|labels| labels[0] == "planner")
        .collect();
    edges.sort();
    edges
}

fn agent(id: u8, parent: Option<u8>, name: &'static str) -> CanonicalSpan<'static> {
    span(id, parent, SpanClass::Agent, GenAiFields { agent: Some(name), ..GenAiFields::default() })
}

fn chat(id: u8, parent: Option<u8>, kind: SpanKind, service: &'static str) -> CanonicalSpan<'static> {
    let fields = GenAiFields {
        operation: Some("chat"),
        provider: Some("vllm"),
        model: Some("llama-3.1-8b"),
        input_tokens: Some(1000),
        output_tokens: Some(50),
        cached_input_tokens: Some(600),
        cache_write_tokens: Some(200),
        reasoning_tokens: Some(20),
        ..GenAiFields::default()
    };
    CanonicalSpan { kind, service, ..span(id, parent, SpanClass::Llm, fields) }
}

fn run(spans: &[CanonicalSpan<'static>]) -> Vec<Observation<'static>> {
    let mut deriver = Deriver::default();
    let mut out = Vec::new();
    for span in spans {
        deriver.observe(span, None, 0.0, &mut out);
    }
    deriver.tick(1e9, &mut out);
    out
}

#[test]
fn cache_and_reasoning_tokens_count_apart_and_calls_without_usage_are_counted() {
    let out = run(&[agent(1, None, "planner"), chat(2, Some(1), SpanKind::Client, "app")]);
    assert_eq!(total(&out, metric::LLM_CACHE_READ_TOKENS_TOTAL), 600.0);
    assert_eq!(total(&out, metric::LLM_CACHE_WRITE_TOKENS_TOTAL), 200.0);
    assert_eq!(total(&out, metric::LLM_REASONING_TOKENS_TOTAL), 20.0);
    assert_eq!(
        labels_of(&out, metric::LLM_REASONING_TOKENS_TOTAL),
        [["app", "planner", "vllm", "llama-3.1-8b"]]
    );
    assert_eq!(total(&out, metric::LLM_USAGE_MISSING_TOTAL), 0.0);
    let mut bare = chat(3, Some(1), SpanKind::Client, "app");
    bare.fields = GenAiFields { model: Some("gpt-4o"), ..GenAiFields::default() };
    let mut failed = bare.clone();
    failed.span_id = [4; 8];
    failed.error = Some(agentrace_semconv::ErrorType::Timeout);
    let out = run(&[agent(1, None, "planner"), bare, failed]);
    assert_eq!(labels_of(&out, metric::LLM_USAGE_MISSING_TOTAL), [["app", "planner", "", "gpt-4o"]]);
}

#[test]
fn an_inference_servers_span_under_the_applications_call_counts_once_in_any_order() {
    // agent 1 → client chat 2 → HTTP client span 3 → vLLM server span 4.
    let http = CanonicalSpan {
        kind: SpanKind::Client,
        ..span(3, Some(2), SpanClass::Other, GenAiFields::default())
    };
    let spans = [
        agent(1, None, "planner"),
        chat(2, Some(1), SpanKind::Client, "app"),
        http,
        chat(4, Some(3), SpanKind::Server, "vllm"),
    ];
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [3, 0, 2, 1], [1, 3, 0, 2]] {
        let out = run(&order.map(|index| spans[index].clone()));
        assert_eq!(total(&out, metric::LLM_REQUESTS_TOTAL), 1.0, "{order:?}");
        assert_eq!(total(&out, metric::LLM_PROMPT_TOKENS_TOTAL), 1000.0, "{order:?}");
        assert_eq!(labels_of(&out, metric::LLM_PROMPT_TOKENS_TOTAL)[0][..2], ["app", "planner"], "{order:?}");
        assert_eq!(total(&out, metric::SELF_LLM_SPANS_DEDUPLICATED_TOTAL), 1.0, "{order:?}");
        assert_eq!(
            edges_from_planner(&out),
            [["planner", "model:llama-3.1-8b", "", "svc", "app"]],
            "{order:?}"
        );
        assert_eq!(total(&out, metric::AGENT_INVOCATION_LLM_CALLS), 1.0, "{order:?}");
        assert_eq!(labels_of(&out, metric::SPANMETRICS_LATENCY).len(), 4, "span metrics keep both");
    }
    // Linked to the application's call instead of under it (its own root in the trace).
    let mut linked = chat(4, None, SpanKind::Server, "vllm");
    linked.linked_span_id = Some([2; 8]);
    let out = run(&[linked, agent(1, None, "planner"), chat(2, Some(1), SpanKind::Client, "app")]);
    assert_eq!(total(&out, metric::LLM_REQUESTS_TOTAL), 1.0);
    assert_eq!(total(&out, metric::SELF_LLM_SPANS_DEDUPLICATED_TOTAL), 1.0);
    // Without the application's span, the server's is the record, under the agent above.
    let out = run(&[agent(1, None, "planner"), chat(4, Some(1), SpanKind::Server, "vllm")]);
    assert_eq!(total(&out, metric::LLM_REQUESTS_TOTAL), 1.0);
    assert_eq!(labels_of(&out, metric::LLM_PROMPT_TOKENS_TOTAL)[0][..2], ["vllm", "planner"]);
    assert_eq!(total(&out, metric::SELF_LLM_SPANS_DEDUPLICATED_TOTAL), 0.0);
}

fn mcp_span(id: u8, parent: u8, kind: SpanKind, service: &'static str) -> CanonicalSpan<'static> {
    let fields =
        GenAiFields { mcp_method: Some("tools/call"), tool: Some("get_weather"), ..GenAiFields::default() };
    let class = if kind == SpanKind::Client { SpanClass::Tool } else { SpanClass::Other };
    CanonicalSpan { kind, service, ..span(id, Some(parent), class, fields) }
}

#[test]
fn mcp_tool_calls_count_for_the_calling_agent_with_server_edges_once() {
    let client = mcp_span(2, 1, SpanKind::Client, "app");
    // A framework's span around the SDK's own client span of the same call.
    let inner = mcp_span(3, 2, SpanKind::Client, "app");
    let server = mcp_span(4, 3, SpanKind::Server, "weather-server");
    let out = run(&[server, inner, agent(1, None, "planner"), client]);
    assert_eq!(labels_of(&out, metric::AGENT_TOOL_CALLS_TOTAL), [["app", "planner", "get_weather", "ok"]]);
    assert_eq!(
        labels_of(&out, metric::MCP_CLIENT_OPERATION_DURATION_SECONDS),
        [["app", "planner", "tools/call", "get_weather", "ok"]]
    );
    assert_eq!(
        labels_of(&out, metric::MCP_SERVER_OPERATION_DURATION_SECONDS),
        [["weather-server", "tools/call", "get_weather", "ok"]]
    );
    assert_eq!(total(&out, metric::SELF_MCP_SPANS_DEDUPLICATED_TOTAL), 1.0);
    assert_eq!(
        edges_from_planner(&out),
        [
            ["planner", "mcp:weather-server", "", "svc", "weather-server"],
            ["planner", "tool:get_weather", "", "svc", "app"],
        ]
    );
    assert_eq!(total(&out, metric::AGENT_INVOCATION_TOOL_CALLS), 1.0);
    // A client that names its server draws the edge; the server span then draws none.
    let mut named = mcp_span(2, 1, SpanKind::Client, "app");
    named.fields.server_address = Some("weather.internal");
    let out = run(&[agent(1, None, "planner"), named, mcp_span(4, 2, SpanKind::Server, "weather-server")]);
    let servers: Vec<String> = edges_from_planner(&out).into_iter().map(|labels| labels[1].clone()).collect();
    assert_eq!(
        servers.iter().filter(|server| server.starts_with("mcp:")).collect::<Vec<_>>(),
        ["mcp:weather.internal"]
    );
}

#[test]
fn an_a2a_call_draws_the_edge_to_the_remote_agent_once() {
    let mut call = CanonicalSpan {
        kind: SpanKind::Client,
        ..span(
            2,
            Some(1),
            SpanClass::Other,
            GenAiFields { a2a_method: Some("SendMessage"), ..GenAiFields::default() },
        )
    };
    call.remote_agent = Some("travel-agent");
    let out = run(&[agent(1, None, "planner"), call.clone()]);
    assert_eq!(edges_from_planner(&out), [["planner", "travel-agent", "", "svc", ""]]);
    // The remote side's spans arrive too: still one edge.
    let remote = CanonicalSpan { service: "travel", ..agent(3, Some(2), "travel-agent") };
    let out = run(&[remote, agent(1, None, "planner"), call]);
    assert_eq!(edges_from_planner(&out), [["planner", "travel-agent", "", "svc", ""]]);
}

#[test]
fn guardrail_results_count_under_the_agent_of_the_trace() {
    let mut check = span(2, Some(1), SpanClass::Other, GenAiFields::default());
    check.guardrails =
        vec![("pii", Cow::Borrowed("GUARDRAIL_INTERVENED")), ("toxicity", Cow::Owned("6".to_owned()))];
    let out = run(&[check, agent(1, None, "planner")]);
    let mut results = labels_of(&out, metric::LLM_GUARDRAIL_RESULTS_TOTAL);
    results.sort();
    assert_eq!(
        results,
        [["svc", "planner", "pii", "GUARDRAIL_INTERVENED"], ["svc", "planner", "toxicity", "6"]]
    );
}

#[test]
fn spec_named_series_follow_the_conventions_labels_only_when_asked() {
    let mut call = chat(2, Some(1), SpanKind::Client, "app");
    call.fields.modality_input_tokens = [Some(900), Some(100), None];
    call.fields.time_to_first_token = Some(0.5);
    let spans = [agent(1, None, "planner"), call];
    assert!(run(&spans).iter().all(|observation| !observation.metric.starts_with("gen_ai_")));
    let config = GraphConfig { spec_names: true, ..GraphConfig::default() };
    let mut deriver = Deriver::new(config, Arc::new(crate::cost::PriceTable::built_in()));
    let mut out = Vec::new();
    for span in &spans {
        deriver.observe(span, None, 0.0, &mut out);
    }
    deriver.tick(1e9, &mut out);
    let call = ["app", "chat", "vllm", "llama-3.1-8b"];
    let with = |last: &'static str| call.iter().copied().chain([last]).collect::<Vec<_>>();
    assert_eq!(labels_of(&out, metric::spec::INFERENCE_DURATION), [with("")]);
    assert_eq!(labels_of(&out, metric::spec::TIME_TO_FIRST_CHUNK), [call]);
    assert_eq!(total(&out, metric::spec::TIME_PER_OUTPUT_CHUNK), 1.5 / 50.0);
    assert_eq!(labels_of(&out, metric::spec::USAGE_INPUT_TOKENS), [with("text"), with("image")]);
    assert_eq!(total(&out, metric::spec::USAGE_INPUT_TOKENS), 1000.0);
    assert_eq!(labels_of(&out, metric::spec::USAGE_OUTPUT_TOKENS), [with("unknown")]);
    assert_eq!(total(&out, metric::spec::USAGE_CACHE_WRITE_INPUT_TOKENS), 200.0);
    assert_eq!(total(&out, metric::spec::USAGE_REASONING_OUTPUT_TOKENS), 20.0);
    assert_eq!(labels_of(&out, metric::spec::INVOKE_AGENT_DURATION), [["svc", "planner", ""]]);
    assert_eq!(total(&out, metric::spec::INVOKE_AGENT_INFERENCE_CALLS), 1.0);
    // agentrace's own series are derived as before.
    assert_eq!(total(&out, metric::LLM_PROMPT_TOKENS_TOTAL), 1000.0);
}

#[test]
fn a_conversation_counts_its_traces_calls_once_whether_or_not_they_name_it() {
    let config = GraphConfig {
        conversations: crate::derive::ConversationConfig { idle_secs: 60.0, max_open: 10 },
        ..GraphConfig::default()
    };
    let mut deriver = Deriver::new(config, Arc::new(crate::cost::PriceTable::built_in()));
    let mut out = Vec::new();
    for trace in [1u8, 2] {
        let mut planner = agent(1, None, "planner");
        planner.fields.conversation = Some("conv-9");
        let http = CanonicalSpan {
            kind: SpanKind::Client,
            ..span(3, Some(2), SpanClass::Other, GenAiFields::default())
        };
        // The call and the inference server's span of it name no conversation.
        let mut spans = [
            planner,
            chat(2, Some(1), SpanKind::Client, "app"),
            http,
            chat(4, Some(3), SpanKind::Server, "vllm"),
        ];
        for span in &mut spans {
            span.trace_id = [trace; 16];
        }
        for span in &spans {
            deriver.observe(span, None, f64::from(trace), &mut out);
        }
    }
    deriver.tick(100.0, &mut out);
    assert!(
        total(&out, metric::AGENT_CONVERSATION_TURNS) == 0.0,
        "idle for 60 s from its last trace's close"
    );
    deriver.tick(160.0, &mut out);
    assert_eq!(total(&out, metric::AGENT_CONVERSATION_TURNS), 2.0);
    assert_eq!(total(&out, metric::AGENT_CONVERSATION_TOKENS), 2.0 * 1050.0, "each call once");
    assert_eq!(labels_of(&out, metric::AGENT_CONVERSATION_TOKENS), [["svc", "planner"]]);
}
