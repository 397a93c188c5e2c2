use super::*;
use crate::wire::AnyValue;
use crate::wire::Status;

/// A clock far past every fixture span's end.
const NOW: f64 = 1e10;

pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned().into(), value: Some(AnyValue { value: Some(value) }) }
}

pub(crate) fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned().into()))
}

fn span(name: &str, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![1; 16].into(),
        span_id: vec![2; 8].into(),
        name: name.to_owned().into(),
        attributes,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 3_500_000_000,
        ..Default::default()
    }
}

#[test]
fn reads_an_llm_call() {
    let span = span(
        "chat gpt-4o",
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            text(attr::GEN_AI_PROVIDER_NAME, "openai"),
            kv(attr::GEN_AI_USAGE_INPUT_TOKENS, any_value::Value::IntValue(10)),
        ],
    );
    let canonical = Normalizer::default().normalize("svc", None, &span, NOW).expect("valid ids");
    assert_eq!(canonical.class, SpanClass::Llm);
    assert_eq!(canonical.fields.model, Some("gpt-4o"), "model from the span name");
    assert_eq!(canonical.fields.input_tokens, Some(10));
    assert_eq!(canonical.duration_seconds(), 2.5);
    assert_eq!(canonical.parent_span_id, None);
    assert_eq!(canonical.error, None);
}

#[test]
fn names_come_from_span_names_when_attributes_are_missing() {
    let normalizer = Normalizer::default();
    let agent = span("invoke_agent planner", vec![text(attr::GEN_AI_OPERATION_NAME, "invoke_agent")]);
    let tool = span("execute_tool web_search", vec![text(attr::GEN_AI_OPERATION_NAME, "execute_tool")]);
    assert_eq!(normalizer.normalize("s", None, &agent, NOW).expect("valid").fields.agent, Some("planner"));
    assert_eq!(normalizer.normalize("s", None, &tool, NOW).expect("valid").fields.tool, Some("web_search"));
}

#[test]
fn error_type_comes_from_the_most_specific_source() {
    let mut failing = span(
        "chat m",
        vec![text(attr::GEN_AI_OPERATION_NAME, "chat"), text(attr::ERROR_TYPE, "openai.BadRequestError")],
    );
    failing.events.push(span::Event {
        name: attr::EXCEPTION_EVENT.to_owned().into(),
        attributes: vec![text(attr::EXCEPTION_MESSAGE, "maximum context length is 8192 tokens")],
        ..Default::default()
    });
    let canonical = Normalizer::default().normalize("s", None, &failing, NOW).expect("valid");
    assert_eq!(canonical.error, Some(ErrorType::ContextLengthExceeded));
}

#[test]
fn an_error_status_without_detail_is_other_and_ok_is_no_error() {
    let mut failing = span("chat m", vec![]);
    failing.status = Some(Status { code: status::StatusCode::Error as i32, message: String::new().into() });
    let normalizer = Normalizer::default();
    assert_eq!(normalizer.normalize("s", None, &failing, NOW).expect("valid").error, Some(ErrorType::Other));
    let fine = span("chat m", vec![]);
    assert_eq!(normalizer.normalize("s", None, &fine, NOW).expect("valid").error, None);
}

#[test]
fn weights_come_from_the_adjusted_count_then_the_tracestate() {
    let normalizer = Normalizer::default();
    let mut sampled = span("chat m", vec![]);
    sampled.trace_state = "ot=th:8".to_owned().into();
    assert_eq!(normalizer.normalize("s", None, &sampled, NOW).expect("valid").weight, 2.0);
    sampled.attributes.push(kv(attr::SAMPLING_ADJUSTED_COUNT, any_value::Value::IntValue(10)));
    assert_eq!(normalizer.normalize("s", None, &sampled, NOW).expect("valid").weight, 10.0);
    assert_eq!(normalizer.normalize("s", None, &span("chat m", vec![]), NOW).expect("valid").weight, 1.0);
}

#[test]
fn first_token_events_give_the_time_to_first_token() {
    let mut streamed = span("openai.chat", vec![text("llm.request.type", "chat")]);
    for offset in [900_000_000, 250_000_000] {
        streamed.events.push(span::Event {
            name: agentrace_semconv::attr::openllmetry::COMPLETION_CHUNK_EVENT.to_owned().into(),
            time_unix_nano: streamed.start_time_unix_nano + offset,
            ..Default::default()
        });
    }
    let canonical = Normalizer::default().normalize("s", None, &streamed, NOW).expect("valid");
    assert_eq!(canonical.fields.time_to_first_token, Some(0.25));
}

#[test]
fn ids_of_the_wrong_length_are_refused() {
    let mut bad = span("x", vec![]);
    bad.trace_id = vec![1; 15].into();
    assert!(Normalizer::default().normalize("s", None, &bad, NOW).is_none());
}

fn scope(name: &str) -> InstrumentationScope {
    InstrumentationScope { name: name.to_owned().into(), ..Default::default() }
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

#[test]
fn only_genai_span_names_are_split_into_operation_and_target() {
    let normalizer = Normalizer::default();
    let chain = span("Step 1", vec![text(attr::openinference::SPAN_KIND, "CHAIN")]);
    assert_eq!(normalizer.normalize("s", None, &chain, NOW).expect("valid").fields.step, Some("Step 1"));
    let task = span("coordinator.task 0.execute", vec![text(attr::openinference::SPAN_KIND, "AGENT")]);
    let agent = normalizer.normalize("s", None, &task, NOW).expect("valid");
    assert_eq!(agent.fields.agent, Some("coordinator.task 0.execute"), "the whole name, not `0.execute`");
    let genai = span("invoke_agent planner", vec![text(attr::GEN_AI_OPERATION_NAME, "invoke_agent")]);
    assert_eq!(normalizer.normalize("s", None, &genai, NOW).expect("valid").fields.agent, Some("planner"));
}

#[test]
fn framework_rules_apply_by_instrumentation_scope() {
    let normalizer = Normalizer::default();
    // Strands: milliseconds, and its own name where a provider would be.
    let strands = span(
        "chat",
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            text(attr::GEN_AI_SYSTEM, "strands-agents"),
            int(attr::openlit::SERVER_TIME_TO_FIRST_TOKEN, 436),
        ],
    );
    let strands_scope = scope("strands.telemetry.tracer");
    let read = normalizer.normalize("s", framework_of(Some(&strands_scope)), &strands, NOW).expect("valid");
    assert_eq!(read.fields.time_to_first_token, Some(0.436));
    assert_eq!(read.fields.provider, None);
    let elsewhere = normalizer.normalize("s", None, &strands, NOW).expect("valid");
    // OpenLIT's key is seconds elsewhere: 436 s in a 2.5 s span is impossible, so dropped.
    assert_eq!(elsewhere.fields.time_to_first_token, None);
    assert_eq!(elsewhere.invalid, [agentrace_semconv::metric::invalid::FIRST_TOKEN_AFTER_END]);
    // openai-agents: the root AGENT span without a name is the run, not an agent.
    let workflow = span("Agent workflow", vec![text(attr::openinference::SPAN_KIND, "AGENT")]);
    let openai_agents = scope("openinference.instrumentation.openai_agents");
    assert_eq!(
        normalizer.normalize("s", framework_of(Some(&openai_agents)), &workflow, NOW).expect("valid").class,
        SpanClass::Other
    );
    // smolagents: the agent is the span name before `.run`.
    let run = span("researcher.run", vec![text(attr::openinference::SPAN_KIND, "AGENT")]);
    let smolagents = scope("openinference.instrumentation.smolagents");
    let read = normalizer.normalize("s", framework_of(Some(&smolagents)), &run, NOW).expect("valid");
    assert_eq!((read.class, read.fields.agent), (SpanClass::Agent, Some("researcher")));
    // AG2: a usage record with a model and tokens is not a model call.
    let usage = span(
        "record_usage model_call",
        vec![
            text("ag2.span.type", "usage"),
            text(attr::GEN_AI_RESPONSE_MODEL, "gpt-4o"),
            int(attr::GEN_AI_USAGE_INPUT_TOKENS, 10),
        ],
    );
    let ag2 = scope("opentelemetry.instrumentation.ag2");
    assert_eq!(
        normalizer.normalize("s", framework_of(Some(&ag2)), &usage, NOW).expect("valid").class,
        SpanClass::Other
    );
}

#[test]
fn langchain_names_the_agent_in_its_metadata() {
    let normalizer = Normalizer::default();
    let langchain = scope("openinference.instrumentation.langchain");
    let metadata =
        |agent: &str| text("metadata", &format!("{{\"langgraph_step\": 1, \"lc_agent_name\": \"{agent}\"}}"));
    let graph =
        span("researcher", vec![text(attr::openinference::SPAN_KIND, "CHAIN"), metadata("researcher")]);
    let read = normalizer.normalize("s", framework_of(Some(&langchain)), &graph, NOW).expect("valid");
    assert_eq!(
        (read.class, read.fields.agent),
        (SpanClass::Agent, Some("researcher")),
        "the graph is the agent"
    );
    let llm = span(
        "ChatOpenAI",
        vec![
            text(attr::openinference::SPAN_KIND, "LLM"),
            text("llm.model_name", "gpt-4o"),
            metadata("coordinator"),
        ],
    );
    let read = normalizer.normalize("s", framework_of(Some(&langchain)), &llm, NOW).expect("valid");
    assert_eq!((read.class, read.fields.agent), (SpanClass::Llm, Some("coordinator")));
    assert_eq!(json_string(r#"{"lc_agent_name": "a\"b"}"#, "lc_agent_name"), None, "escaped: left unread");
}

#[test]
fn a_model_named_after_its_provider_loses_the_prefix() {
    let generate = span(
        "generate_content openai/gpt-4o",
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "generate_content"),
            text(attr::GEN_AI_PROVIDER_NAME, "openai"),
            text(attr::GEN_AI_REQUEST_MODEL, "openai/gpt-4o"),
        ],
    );
    let read = Normalizer::default().normalize("s", None, &generate, NOW).expect("valid");
    assert_eq!(read.fields.model, Some("gpt-4o"));
    let routed = span(
        "chat x",
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            text(attr::GEN_AI_PROVIDER_NAME, "openrouter"),
            text(attr::GEN_AI_REQUEST_MODEL, "openai/gpt-4o"),
        ],
    );
    let read = Normalizer::default().normalize("s", None, &routed, NOW).expect("valid");
    assert_eq!(read.fields.model, Some("openai/gpt-4o"), "another provider's prefix stays");
}

#[test]
fn an_internal_span_with_a_model_and_tokens_is_not_a_call() {
    let mut record = span(
        "usage",
        vec![text(attr::GEN_AI_RESPONSE_MODEL, "gpt-4o"), int(attr::GEN_AI_USAGE_INPUT_TOKENS, 5)],
    );
    record.kind = span::SpanKind::Internal as i32;
    assert_eq!(
        Normalizer::default().normalize("s", None, &record, NOW).expect("valid").class,
        SpanClass::Other
    );
    record.kind = span::SpanKind::Client as i32;
    assert_eq!(
        Normalizer::default().normalize("s", None, &record, NOW).expect("valid").class,
        SpanClass::Llm
    );
}

#[test]
fn impossible_figures_are_dropped_and_counted() {
    use agentrace_semconv::attr;
    use agentrace_semconv::metric::invalid;
    let huge = span(
        "chat m",
        vec![
            text(attr::GEN_AI_OPERATION_NAME, "chat"),
            int(attr::GEN_AI_USAGE_INPUT_TOKENS, 5_000_000_000),
            int(attr::GEN_AI_USAGE_OUTPUT_TOKENS, 7),
        ],
    );
    let read = Normalizer::default().normalize("s", None, &huge, NOW).expect("valid");
    assert_eq!((read.fields.input_tokens, read.fields.output_tokens), (None, Some(7)));
    assert_eq!(read.invalid, [invalid::TOKENS_OVER_CEILING]);
    assert!(read.timing_valid);

    let mut endless = span("chat m", vec![]);
    endless.end_time_unix_nano = endless.start_time_unix_nano + 2 * 86_400 * 1_000_000_000;
    let read = Normalizer::default().normalize("s", None, &endless, 1e12).expect("valid");
    assert_eq!((read.timing_valid, read.invalid.as_slice()), (false, &[invalid::DURATION_OVER_A_DAY][..]));

    let ahead = span("chat m", vec![]);
    let read = Normalizer::default().normalize("s", None, &ahead, 3.5 - 301.0).expect("valid");
    assert_eq!((read.timing_valid, read.invalid.as_slice()), (false, &[invalid::FUTURE_TIMESTAMP][..]));
    let read = Normalizer::default().normalize("s", None, &ahead, 3.5 - 299.0).expect("valid");
    assert!(read.timing_valid && read.invalid.is_empty());
}

#[test]
fn a_sampling_weight_past_the_ceiling_is_clamped_and_counted() {
    use agentrace_semconv::metric::invalid;
    let mut sampled = span("chat m", vec![]);
    sampled.trace_state = "ot=th:fffffffffffff".to_owned().into();
    let read = Normalizer::default().normalize("s", None, &sampled, NOW).expect("valid");
    assert_eq!(read.weight, sampling::MAX_WEIGHT);
    assert_eq!(read.invalid, [invalid::WEIGHT_CLAMPED]);
}
