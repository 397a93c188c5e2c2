//! The helpers' spans, read back from an in-memory exporter: names, kinds, parents,
//! attributes, errors, agent-name inheritance, async use and propagation over HTTP headers.

use agentrace_semconv::attr;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use crate::ErrorKind;

/// Runs `f` under a subscriber with the agentrace layers and an in-memory exporter.
fn recorded<T>(f: impl FnOnce() -> T) -> (T, Vec<SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry().with(crate::layer(provider.tracer("test")));
    let output = tracing::subscriber::with_default(subscriber, f);
    let _ = provider.force_flush();
    (output, exporter.get_finished_spans().expect("finished spans"))
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|span| span.name.to_string()).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone())
}

fn text(span: &SpanData, key: &str) -> Option<String> {
    attribute(span, key).map(|value| value.as_str().into_owned())
}

#[test]
fn helpers_name_kind_parent_and_attribute_their_spans() {
    let ((), spans) = recorded(|| {
        let planner = crate::agent("planner").conversation_id("conv-1");
        planner.in_scope(|| {
            let plan = crate::step("plan");
            plan.in_scope(|| {
                let call = crate::chat("gpt-4o").provider("openai").temperature(0.2).max_tokens(256).start();
                call.first_token();
                call.record_usage(120, 40);
                call.record_cached_input_tokens(100);
                call.record_cache_write_input_tokens(15);
                call.conversation_id("conv-1");
                call.prompt("answer", "2");
                call.record_reasoning_tokens(12);
                call.finish_reasons(&["stop"]);
                call.response_model("gpt-4o-2024-08-06");
                drop(call);
                drop(crate::tool("web_search").call_id("call-7"));
            });
        });
    });
    assert_eq!(spans.len(), 4, "{:?}", names(&spans));
    let agent = named(&spans, "invoke_agent planner");
    let step = named(&spans, "agent_step plan");
    let chat = named(&spans, "chat gpt-4o");
    let tool = named(&spans, "execute_tool web_search");

    assert_eq!(agent.span_kind, SpanKind::Internal);
    assert_eq!(step.span_kind, SpanKind::Internal);
    assert_eq!(chat.span_kind, SpanKind::Client);
    assert_eq!(tool.span_kind, SpanKind::Internal);

    assert_eq!(step.parent_span_id, agent.span_context.span_id());
    assert_eq!(chat.parent_span_id, step.span_context.span_id());
    assert_eq!(tool.parent_span_id, step.span_context.span_id());
    assert!(spans.iter().all(|span| span.span_context.trace_id() == agent.span_context.trace_id()));

    assert_eq!(text(agent, attr::GEN_AI_OPERATION_NAME).as_deref(), Some("invoke_agent"));
    assert_eq!(text(agent, attr::GEN_AI_AGENT_NAME).as_deref(), Some("planner"));
    assert_eq!(text(agent, attr::GEN_AI_CONVERSATION_ID).as_deref(), Some("conv-1"));
    assert_eq!(text(step, attr::GEN_AI_OPERATION_NAME).as_deref(), Some("agent_step"));
    assert_eq!(text(step, attr::AGENTRACE_STEP_NAME).as_deref(), Some("plan"));
    for child in [step, chat, tool] {
        assert_eq!(text(child, attr::GEN_AI_AGENT_NAME).as_deref(), Some("planner"), "{}", child.name);
    }

    assert_eq!(text(chat, attr::GEN_AI_OPERATION_NAME).as_deref(), Some("chat"));
    assert_eq!(text(chat, attr::GEN_AI_REQUEST_MODEL).as_deref(), Some("gpt-4o"));
    assert_eq!(text(chat, attr::GEN_AI_RESPONSE_MODEL).as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(text(chat, attr::GEN_AI_PROVIDER_NAME).as_deref(), Some("openai"));
    assert_eq!(attribute(chat, attr::GEN_AI_REQUEST_TEMPERATURE), Some(Value::F64(0.2)));
    assert_eq!(attribute(chat, attr::GEN_AI_REQUEST_MAX_TOKENS), Some(Value::I64(256)));
    assert_eq!(attribute(chat, attr::GEN_AI_USAGE_INPUT_TOKENS), Some(Value::I64(120)));
    assert_eq!(attribute(chat, attr::GEN_AI_USAGE_OUTPUT_TOKENS), Some(Value::I64(40)));
    assert_eq!(attribute(chat, attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS), Some(Value::I64(100)));
    assert_eq!(attribute(chat, attr::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS), Some(Value::I64(12)));
    assert_eq!(attribute(chat, attr::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS), Some(Value::I64(15)));
    assert_eq!(text(chat, attr::GEN_AI_CONVERSATION_ID).as_deref(), Some("conv-1"));
    assert_eq!(text(chat, attr::GEN_AI_PROMPT_NAME).as_deref(), Some("answer"));
    assert_eq!(text(chat, attr::GEN_AI_PROMPT_VERSION).as_deref(), Some("2"));
    assert_eq!(text(chat, attr::GEN_AI_RESPONSE_FINISH_REASONS).as_deref(), Some("[\"stop\"]"));
    let Some(Value::F64(first_token)) = attribute(chat, attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) else {
        panic!("time to first token is a double");
    };
    assert!((0.0..60.0).contains(&first_token));
    assert_eq!(text(tool, attr::GEN_AI_TOOL_NAME).as_deref(), Some("web_search"));
    assert_eq!(text(tool, attr::GEN_AI_TOOL_CALL_ID).as_deref(), Some("call-7"));
    assert_eq!(chat.status, Status::Unset);
}

#[test]
fn failures_carry_the_error_type_status_and_exception_event() {
    let kinds = ErrorKind::NAMED;
    let ((), spans) = recorded(|| {
        for kind in kinds {
            crate::chat(kind.as_str()).start().fail(kind, format!("failed with {}", kind.as_str()));
        }
    });
    for kind in kinds {
        let span = named(&spans, &format!("chat {}", kind.as_str()));
        assert_eq!(text(span, attr::ERROR_TYPE).as_deref(), Some(kind.as_str()));
        assert_eq!(span.status, Status::error(format!("failed with {}", kind.as_str())));
        let exception =
            span.events.iter().find(|event| event.name == attr::EXCEPTION_EVENT).expect("exception event");
        assert!(exception.attributes.contains(&KeyValue::new(attr::EXCEPTION_TYPE, kind.as_str())));
    }
}

#[test]
fn fail_with_classifies_the_error_text() {
    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out after 30 s");
    let ((), spans) = recorded(|| crate::tool("fetch").fail_with(&error));
    assert_eq!(text(&spans[0], attr::ERROR_TYPE).as_deref(), Some("timeout"));
}

#[test]
fn model_loads_are_their_own_operation() {
    let ((), spans) = recorded(|| drop(crate::model_load("llama-3.1-8b").provider("vllm")));
    let load = named(&spans, "load_model llama-3.1-8b");
    assert_eq!(text(load, attr::GEN_AI_OPERATION_NAME).as_deref(), Some("load_model"));
    assert_eq!(text(load, attr::GEN_AI_REQUEST_MODEL).as_deref(), Some("llama-3.1-8b"));
}

#[tracing::instrument]
fn retrieve_documents(query: &str) -> usize {
    let call = crate::llm("embeddings", "text-embedding-3-small").start();
    call.record_usage(query.len() as u64, 0);
    query.len()
}

#[test]
fn instrument_spans_nest_and_pass_the_agent_on() {
    let (_, spans) = recorded(|| crate::agent("researcher").in_scope(|| retrieve_documents("rust agents")));
    let agent = named(&spans, "invoke_agent researcher");
    let retrieve = named(&spans, "retrieve_documents");
    let embeddings = named(&spans, "embeddings text-embedding-3-small");
    assert_eq!(retrieve.parent_span_id, agent.span_context.span_id());
    assert_eq!(embeddings.parent_span_id, retrieve.span_context.span_id());
    assert_eq!(text(embeddings, attr::GEN_AI_AGENT_NAME).as_deref(), Some("researcher"));
}

#[test]
fn async_helpers_hold_no_guard_across_await() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ((), spans) = recorded(|| {
        runtime.block_on(async {
            let writer = crate::agent("writer");
            writer
                .instrument(async {
                    tokio::task::yield_now().await;
                    let call = crate::chat("llama").start();
                    call.instrument(async { tokio::task::yield_now().await }).await;
                    call.record_usage(5, 7);
                })
                .await;
        });
    });
    let agent = named(&spans, "invoke_agent writer");
    let chat = named(&spans, "chat llama");
    assert_eq!(chat.parent_span_id, agent.span_context.span_id());
    assert_eq!(text(chat, attr::GEN_AI_AGENT_NAME).as_deref(), Some("writer"));
}

#[test]
fn context_crosses_an_http_hop_with_baggage() {
    let mut headers = http::HeaderMap::new();
    let (caller, caller_spans) = recorded(|| {
        let planner = crate::agent("planner");
        planner.in_scope(|| {
            let context = crate::with_baggage([KeyValue::new("tenant", "acme")]);
            crate::inject_context(&context, &mut headers);
        });
        planner.span().context().span().span_context().clone()
    });
    assert!(headers.contains_key("traceparent"));
    assert_eq!(headers.get("baggage").map(|value| value.to_str().unwrap_or_default()), Some("tenant=acme"));

    // The callee: another subscriber and exporter, as in another process.
    let (remote_baggage, callee_spans) = recorded(|| {
        let researcher = crate::agent("researcher").continue_from(&headers);
        drop(researcher.in_scope(|| crate::tool("web_search")));
        let extracted = crate::extract(&headers);
        opentelemetry::baggage::BaggageExt::baggage(&extracted).get("tenant").map(|value| value.to_string())
    });
    let researcher = named(&callee_spans, "invoke_agent researcher");
    assert_eq!(researcher.span_context.trace_id(), caller.trace_id());
    assert_eq!(researcher.parent_span_id, caller.span_id());
    assert_eq!(named(&callee_spans, "execute_tool web_search").span_context.trace_id(), caller.trace_id());
    assert_eq!(caller_spans.len(), 1);
    assert_eq!(remote_baggage.as_deref(), Some("acme"));
}

#[test]
fn content_is_captured_only_when_asked_and_cut_to_the_cap() {
    let prompt = r#"[{"role":"user","parts":[{"type":"text","content":"héllo"}]}]"#;
    let ((), spans) = recorded(|| {
        crate::set_capture(false, 1024);
        crate::chat("off").start().record_input_messages(prompt);
        crate::set_capture(true, 40);
        let call = crate::chat("on").start();
        call.record_input_messages(prompt);
        call.record_output_messages("short");
        crate::set_capture(false, crate::content::DEFAULT_MAX_BYTES);
    });
    assert_eq!(attribute(named(&spans, "chat off"), attr::GEN_AI_INPUT_MESSAGES), None);
    let on = named(&spans, "chat on");
    let captured = text(on, attr::GEN_AI_INPUT_MESSAGES).expect("captured");
    assert!(captured.len() <= 40 && prompt.starts_with(&captured), "{captured}");
    assert_eq!(text(on, attr::GEN_AI_OUTPUT_MESSAGES).as_deref(), Some("short"));
}

#[test]
fn helpers_without_any_subscriber_do_nothing_and_do_not_panic() {
    let call = crate::chat("m").start();
    call.first_token();
    call.record_usage(u64::MAX, 1);
    call.fail(ErrorKind::Oom, "no subscriber");
    drop(crate::agent("a").continue_from(&http::HeaderMap::new()));
    assert_eq!(crate::current_agent(), None);
}

#[test]
fn an_unreachable_collector_costs_a_bounded_queue_and_counted_drops() {
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let guard = crate::builder()
        .endpoint(format!("http://{closed_port}"))
        .queue_size(10)
        .export_timeout(std::time::Duration::from_millis(500))
        .build()
        .expect("builds without connecting");
    let subscriber = tracing_subscriber::registry().with(crate::layer(guard.tracer()));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..100 {
            drop(crate::chat("m").start());
        }
    });
    let stats = guard.shutdown();
    assert_eq!(stats.ended, 100);
    assert_eq!(stats.exported, 0);
    assert_eq!(stats.dropped() + stats.failed, 100);
    assert!(stats.dropped() > 0, "100 spans at once into a queue of 10 overflow it: {stats:?}");
}
