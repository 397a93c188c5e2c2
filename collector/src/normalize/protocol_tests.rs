//! GenAI v0.1.0 names and their older spellings, MCP, A2A, the new operations and guardrail
//! events, as normalize reads them.

use super::tests::{kv, text};
use super::*;
use crate::wire::span::Event;
use crate::wire::span::SpanKind;

const NOW: f64 = 1e10;

fn span(name: &str, kind: SpanKind, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![1; 16].into(),
        span_id: vec![2; 8].into(),
        name: name.to_owned().into(),
        kind: kind as i32,
        attributes,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 3_500_000_000,
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn read(span: &Span) -> CanonicalSpan<'_> {
    Normalizer::default().normalize("svc", None, span, NOW).expect("valid ids")
}

#[test]
fn both_generations_of_usage_names_read_the_same() {
    let usage = |cache_write: &str, cache_read: &str, reasoning: &str| {
        span(
            "chat claude-sonnet-4",
            SpanKind::Client,
            vec![
                text(attr::GEN_AI_OPERATION_NAME, "chat"),
                int(attr::GEN_AI_USAGE_INPUT_TOKENS, 1000),
                int(cache_write, 200),
                int(cache_read, 600),
                int(reasoning, 20),
            ],
        )
    };
    let current = usage(
        attr::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        attr::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    );
    let renamed = usage(
        attr::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD,
        attr::GEN_AI_USAGE_REASONING_TOKENS_OLD,
    );
    let openllmetry = usage(
        attr::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD,
        attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD,
        attr::GEN_AI_USAGE_REASONING_TOKENS_OLD,
    );
    for span in [&current, &renamed, &openllmetry] {
        let fields = read(span).fields;
        assert_eq!(
            (fields.cache_write_tokens, fields.cached_input_tokens, fields.reasoning_tokens),
            (Some(200), Some(600), Some(20))
        );
    }
}

#[test]
fn modality_conversation_and_prompt_are_read() {
    let call = span(
        "chat gpt-4o",
        SpanKind::Client,
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            int(attr::GEN_AI_USAGE_TEXT_INPUT_TOKENS, 900),
            int(attr::GEN_AI_USAGE_IMAGE_INPUT_TOKENS, 100),
            int(attr::GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS, 40),
            text(attr::GEN_AI_CONVERSATION_ID, "conv-1"),
            text(attr::GEN_AI_PROMPT_NAME, "support-answer"),
            text(attr::GEN_AI_PROMPT_VERSION, "3"),
        ],
    );
    let fields = read(&call).fields;
    assert_eq!(fields.modality_input_tokens, [Some(900), Some(100), None]);
    assert_eq!(fields.modality_output_tokens, [None, None, Some(40)]);
    assert_eq!(
        (fields.conversation, fields.prompt_name, fields.prompt_version),
        (Some("conv-1"), Some("support-answer"), Some("3"))
    );
    let session = span("LLM", SpanKind::Internal, vec![text(attr::openinference::SESSION_ID, "s-9")]);
    assert_eq!(read(&session).fields.conversation, Some("s-9"));
    let association = span("task", SpanKind::Internal, vec![text(attr::openllmetry::SESSION_ID, "s-10")]);
    assert_eq!(read(&association).fields.conversation, Some("s-10"));
}

#[test]
fn mcp_client_tool_calls_are_tool_calls_and_the_rest_operations() {
    let sdk = span(
        "MCP send tools/call get_weather",
        SpanKind::Client,
        vec![text(attr::mcp::METHOD_NAME, "tools/call"), text("jsonrpc.request.id", "2")],
    );
    let canonical = read(&sdk);
    assert_eq!((canonical.class, canonical.fields.tool), (SpanClass::Tool, Some("get_weather")));
    let server = span(
        "tools/call get_weather",
        SpanKind::Server,
        vec![
            text(attr::mcp::METHOD_NAME, "tools/call"),
            text(attr::GEN_AI_OPERATION_NAME, "execute_tool"),
            text(attr::GEN_AI_TOOL_NAME, "get_weather"),
        ],
    );
    let canonical = read(&server);
    assert_eq!((canonical.class, canonical.fields.tool), (SpanClass::Other, Some("get_weather")));
    let list =
        span("MCP send tools/list", SpanKind::Client, vec![text(attr::mcp::METHOD_NAME, "tools/list")]);
    let canonical = read(&list);
    assert_eq!(
        (canonical.class, canonical.fields.tool, canonical.fields.mcp_method),
        (SpanClass::Other, None, Some("tools/list"))
    );
}

#[test]
fn an_a2a_client_span_names_the_remote_agent_not_its_own() {
    let call = span(
        "SendMessage",
        SpanKind::Client,
        vec![text(attr::a2a::METHOD_NAME, "SendMessage"), text(attr::GEN_AI_AGENT_NAME, "travel-agent")],
    );
    let canonical = read(&call);
    assert_eq!(
        (canonical.class, canonical.fields.agent, canonical.remote_agent),
        (SpanClass::Other, None, Some("travel-agent"))
    );
}

#[test]
fn plan_memory_and_retrieval_operations() {
    let plan = span("plan planner", SpanKind::Internal, vec![text(attr::GEN_AI_OPERATION_NAME, "plan")]);
    let canonical = read(&plan);
    assert_eq!((canonical.class, canonical.fields.step), (SpanClass::Step, Some("plan")));
    let memory = span(
        "search_memory notes",
        SpanKind::Client,
        vec![text(attr::GEN_AI_OPERATION_NAME, "search_memory")],
    );
    let canonical = read(&memory);
    assert_eq!((canonical.class, canonical.fields.tool), (SpanClass::Tool, Some("search_memory")));
    let retrieval =
        span("retrieval docs", SpanKind::Client, vec![text(attr::GEN_AI_OPERATION_NAME, "retrieval")]);
    assert_eq!(read(&retrieval).fields.tool, Some("docs"));
}

#[test]
fn guardrail_result_events_give_guardrail_and_decision() {
    let mut check = span(
        "apply_guardrail pii-filter",
        SpanKind::Client,
        vec![text(attr::GEN_AI_OPERATION_NAME, "apply_guardrail")],
    );
    let event = |attributes| Event {
        name: attr::GEN_AI_GUARDRAIL_RESULT_EVENT.to_owned().into(),
        attributes,
        ..Default::default()
    };
    check.events = vec![
        event(vec![text(attr::GEN_AI_GUARDRAIL_RESULT_VALUE, "GUARDRAIL_INTERVENED")]),
        event(vec![
            text(attr::GEN_AI_GUARDRAIL_COMPONENT_NAME, "toxicity"),
            int(attr::GEN_AI_GUARDRAIL_RESULT_VALUE, 6),
        ]),
        event(vec![kv(attr::GEN_AI_GUARDRAIL_RESULT_VALUE, any_value::Value::BoolValue(true))]),
    ];
    let canonical = read(&check);
    let results: Vec<(&str, &str)> =
        canonical.guardrails.iter().map(|(guardrail, decision)| (*guardrail, decision.as_ref())).collect();
    assert_eq!(results, [("pii-filter", "GUARDRAIL_INTERVENED"), ("toxicity", "6"), ("pii-filter", "true")]);
    check.events.clear();
    assert!(read(&check).guardrails.is_empty(), "no result event, no result");
}

#[test]
fn a_link_within_the_trace_is_kept_for_deduplication() {
    let mut served = span("llm_request", SpanKind::Server, vec![]);
    let link = |trace: u8, id: u8| crate::wire::span::Link {
        trace_id: vec![trace; 16].into(),
        span_id: vec![id; 8].into(),
        ..Default::default()
    };
    served.links = vec![link(9, 5), link(1, 6)];
    assert_eq!(read(&served).linked_span_id, Some([6; 8]), "the first link into its own trace");
    served.links = vec![link(9, 5)];
    assert_eq!(read(&served).linked_span_id, None);
}
