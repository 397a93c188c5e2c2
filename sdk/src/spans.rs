//! Span helpers with GenAI semantic-convention names, kinds and attributes: agent invocation,
//! agent step, LLM call, tool call, model load.
//!
//! Each helper wraps a `tracing::Span`; the span ends when the helper (and every clone of
//! its span) is dropped. Use `enter()` or `in_scope()` in sync code and `instrument()` for
//! futures, so no guard is held across an `.await`. Spans opened inside an agent invocation
//! carry its `gen_ai.agent.name`. Recording never panics and never returns an error.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use agentrace_semconv::attr::{self, operation};
use agentrace_semconv::ErrorType;
use opentelemetry::trace::Status;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::content;
use crate::scope::current_agent;

/// Methods every helper has: access to its `tracing` span, scoping, attributes and failure.
macro_rules! span_methods {
    ($helper:ty) => {
        impl $helper {
            /// The underlying `tracing` span.
            pub fn span(&self) -> &Span {
                &self.span
            }

            /// Enters the span until the guard drops (sync code only).
            pub fn enter(&self) -> tracing::span::Entered<'_> {
                self.span.enter()
            }

            /// Enters the span until the returned guard drops, giving up the helper (sync code).
            pub fn entered(self) -> tracing::span::EnteredSpan {
                self.span.entered()
            }

            /// Runs `f` inside the span.
            pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
                self.span.in_scope(f)
            }

            /// Runs `future` inside the span each time it is polled.
            pub fn instrument<F: Future>(&self, future: F) -> Instrumented<F> {
                future.instrument(self.span.clone())
            }

            /// Sets any other attribute.
            pub fn set_attribute(&self, key: impl Into<opentelemetry::Key>, value: impl Into<Value>) {
                self.span.set_attribute(key, value);
            }

            /// Marks the span failed: `error.type` (one of the collector's error types), an ERROR
            /// status with `message`, and an `exception` event.
            pub fn fail(&self, kind: ErrorType, message: impl Display) {
                record_failure(&self.span, kind, &message.to_string());
            }

            /// Like [`Self::fail`], classifying the error's text (`Other` when unrecognised).
            pub fn fail_with(&self, error: &dyn std::error::Error) {
                let message = error.to_string();
                let kind = ErrorType::classify(&message).unwrap_or(ErrorType::Other);
                record_failure(&self.span, kind, &message);
            }
        }
    };
}

fn record_failure(span: &Span, kind: ErrorType, message: &str) {
    span.set_attribute(attr::ERROR_TYPE, kind.as_str());
    span.set_status(Status::error(message.to_owned()));
    span.add_event(
        attr::EXCEPTION_EVENT,
        vec![
            KeyValue::new(attr::EXCEPTION_TYPE, kind.as_str()),
            KeyValue::new(attr::EXCEPTION_MESSAGE, message.to_owned()),
        ],
    );
}

/// Sets the enclosing agent's name on a new child span.
fn inherit_agent(span: &Span) {
    if let Some(agent) = current_agent() {
        span.set_attribute(attr::GEN_AI_AGENT_NAME, agent.to_string());
    }
}

// ------------------------------------------------------------------------------------------

/// One invocation of an agent: span `invoke_agent {name}`.
#[derive(Clone, Debug)]
#[must_use = "the span ends when this is dropped"]
pub struct AgentInvocation {
    span: Span,
}

/// Opens an agent invocation. Spans opened inside it carry its name.
pub fn agent(name: &str) -> AgentInvocation {
    // The `gen_ai.agent.name` field (rather than an attribute set later) is what the agent
    // scope layer reads to hand the name to child spans; it must equal attr::GEN_AI_AGENT_NAME.
    let span = tracing::info_span!(
        target: "agentrace",
        "invoke_agent",
        otel.name = %format!("{} {name}", operation::INVOKE_AGENT),
        otel.kind = "internal",
        gen_ai.agent.name = %name,
    );
    span.set_attribute(attr::GEN_AI_OPERATION_NAME, operation::INVOKE_AGENT);
    AgentInvocation { span }
}

impl AgentInvocation {
    /// Makes this invocation the child of the caller whose context came in these headers.
    pub fn continue_from(self, headers: &http::HeaderMap) -> Self {
        let remote = crate::propagation::extract(headers);
        if let Err(error) = self.span.set_parent(remote) {
            tracing::debug!(%error, "cannot set the remote parent of an agent span");
        }
        self
    }

    pub fn agent_id(self, id: &str) -> Self {
        self.span.set_attribute(attr::GEN_AI_AGENT_ID, id.to_owned());
        self
    }

    pub fn conversation_id(self, id: &str) -> Self {
        self.span.set_attribute(attr::GEN_AI_CONVERSATION_ID, id.to_owned());
        self
    }

    pub fn provider(self, provider: &str) -> Self {
        self.span.set_attribute(attr::GEN_AI_PROVIDER_NAME, provider.to_owned());
        self
    }
}

span_methods!(AgentInvocation);

// ------------------------------------------------------------------------------------------

/// A named, low-cardinality step of an agent invocation (plan, act, reflect…).
#[derive(Clone, Debug)]
#[must_use = "the span ends when this is dropped"]
pub struct AgentStep {
    span: Span,
}

pub fn step(name: &str) -> AgentStep {
    let span = tracing::info_span!(target: "agentrace", "agent_step", otel.name = %format!("{} {name}", operation::AGENT_STEP), otel.kind = "internal");
    span.set_attribute(attr::GEN_AI_OPERATION_NAME, operation::AGENT_STEP);
    span.set_attribute(attr::AGENTRACE_STEP_NAME, name.to_owned());
    inherit_agent(&span);
    AgentStep { span }
}

span_methods!(AgentStep);

// ------------------------------------------------------------------------------------------

/// Parameters of an LLM call before it starts; [`LlmRequest::start`] opens the span.
#[derive(Clone, Debug)]
#[must_use = "call start() to open the span"]
pub struct LlmRequest {
    operation: String,
    model: String,
    attributes: Vec<KeyValue>,
}

/// A chat call: span `chat {model}`, kind CLIENT.
pub fn chat(model: &str) -> LlmRequest {
    llm(operation::CHAT, model)
}

/// An LLM call of any GenAI operation (`chat`, `text_completion`, `generate_content`,
/// `embeddings`).
pub fn llm(operation_name: &str, model: &str) -> LlmRequest {
    LlmRequest {
        operation: operation_name.to_owned(),
        model: model.to_owned(),
        attributes: vec![KeyValue::new(attr::GEN_AI_REQUEST_MODEL, model.to_owned())],
    }
}

impl LlmRequest {
    fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    pub fn provider(self, provider: &str) -> Self {
        self.with(attr::GEN_AI_PROVIDER_NAME, provider.to_owned())
    }

    pub fn temperature(self, temperature: f64) -> Self {
        self.with(attr::GEN_AI_REQUEST_TEMPERATURE, temperature)
    }

    pub fn top_p(self, top_p: f64) -> Self {
        self.with(attr::GEN_AI_REQUEST_TOP_P, top_p)
    }

    pub fn max_tokens(self, max_tokens: u32) -> Self {
        self.with(attr::GEN_AI_REQUEST_MAX_TOKENS, i64::from(max_tokens))
    }

    pub fn streaming(self, stream: bool) -> Self {
        self.with(attr::GEN_AI_REQUEST_STREAM, stream)
    }

    /// Any other request attribute.
    pub fn attribute(mut self, attribute: KeyValue) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Opens the span; the call's clock starts now.
    pub fn start(self) -> LlmCall {
        let span = tracing::info_span!(target: "agentrace", "llm_call", otel.name = %format!("{} {}", self.operation, self.model), otel.kind = "client");
        span.set_attribute(attr::GEN_AI_OPERATION_NAME, self.operation);
        for attribute in self.attributes {
            span.set_attribute(attribute.key, attribute.value);
        }
        inherit_agent(&span);
        LlmCall { span, started: Instant::now(), first_token: Arc::new(OnceLock::new()) }
    }
}

/// An LLM call in progress.
#[derive(Clone, Debug)]
#[must_use = "the span ends when this is dropped"]
pub struct LlmCall {
    span: Span,
    started: Instant,
    /// Set once, by the first `first_token()`; shared by clones.
    first_token: Arc<OnceLock<()>>,
}

impl LlmCall {
    /// Marks the arrival of the first streamed token: sets the time to first token (seconds
    /// since `start()`). Only the first call counts.
    pub fn first_token(&self) {
        if self.first_token.set(()).is_ok() {
            let seconds = self.started.elapsed().as_secs_f64();
            self.span.set_attribute(attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, seconds);
        }
    }

    /// Input (prompt) and output (completion) tokens.
    pub fn record_usage(&self, input_tokens: u64, output_tokens: u64) {
        self.span.set_attribute(attr::GEN_AI_USAGE_INPUT_TOKENS, saturate(input_tokens));
        self.span.set_attribute(attr::GEN_AI_USAGE_OUTPUT_TOKENS, saturate(output_tokens));
    }

    /// Input tokens served from a cache (part of the input tokens).
    pub fn record_cached_input_tokens(&self, tokens: u64) {
        self.span.set_attribute(attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, saturate(tokens));
    }

    /// Input tokens written to a cache (part of the input tokens), under the GenAI v0.1.0 name
    /// `gen_ai.usage.cache_write.input_tokens`.
    pub fn record_cache_write_input_tokens(&self, tokens: u64) {
        self.span.set_attribute(attr::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, saturate(tokens));
    }

    /// The conversation (session, thread) this call belongs to: `gen_ai.conversation.id`. The
    /// collector never makes it a label.
    pub fn conversation_id(&self, id: &str) {
        self.span.set_attribute(attr::GEN_AI_CONVERSATION_ID, id.to_owned());
    }

    /// The prompt template the call used: `gen_ai.prompt.name` and `gen_ai.prompt.version`.
    pub fn prompt(&self, name: &str, version: &str) {
        self.span.set_attribute(attr::GEN_AI_PROMPT_NAME, name.to_owned());
        self.span.set_attribute(attr::GEN_AI_PROMPT_VERSION, version.to_owned());
    }

    /// Output tokens spent on reasoning (part of the output tokens).
    pub fn record_reasoning_tokens(&self, tokens: u64) {
        self.span.set_attribute(attr::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, saturate(tokens));
    }

    pub fn finish_reasons(&self, reasons: &[&str]) {
        let reasons: Vec<StringValue> =
            reasons.iter().map(|reason| StringValue::from((*reason).to_owned())).collect();
        self.span.set_attribute(attr::GEN_AI_RESPONSE_FINISH_REASONS, Value::Array(Array::String(reasons)));
    }

    pub fn response_model(&self, model: &str) {
        self.span.set_attribute(attr::GEN_AI_RESPONSE_MODEL, model.to_owned());
    }

    pub fn response_id(&self, id: &str) {
        self.span.set_attribute(attr::GEN_AI_RESPONSE_ID, id.to_owned());
    }

    /// The prompt, as GenAI input-messages JSON. Recorded only when content capture is on.
    pub fn record_input_messages(&self, messages_json: &str) {
        if let Some(text) = content::captured(messages_json) {
            self.span.set_attribute(attr::GEN_AI_INPUT_MESSAGES, text);
        }
    }

    /// The completion, as GenAI output-messages JSON. Recorded only when content capture is on.
    pub fn record_output_messages(&self, messages_json: &str) {
        if let Some(text) = content::captured(messages_json) {
            self.span.set_attribute(attr::GEN_AI_OUTPUT_MESSAGES, text);
        }
    }
}

fn saturate(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

span_methods!(LlmCall);

// ------------------------------------------------------------------------------------------

/// A tool executed by an agent: span `execute_tool {name}`.
#[derive(Clone, Debug)]
#[must_use = "the span ends when this is dropped"]
pub struct ToolCall {
    span: Span,
}

pub fn tool(name: &str) -> ToolCall {
    let span = tracing::info_span!(target: "agentrace", "execute_tool", otel.name = %format!("{} {name}", operation::EXECUTE_TOOL), otel.kind = "internal");
    span.set_attribute(attr::GEN_AI_OPERATION_NAME, operation::EXECUTE_TOOL);
    span.set_attribute(attr::GEN_AI_TOOL_NAME, name.to_owned());
    inherit_agent(&span);
    ToolCall { span }
}

impl ToolCall {
    pub fn call_id(self, id: &str) -> Self {
        self.span.set_attribute(attr::GEN_AI_TOOL_CALL_ID, id.to_owned());
        self
    }

    /// `function`, `extension` or `datastore`.
    pub fn tool_type(self, tool_type: &str) -> Self {
        self.span.set_attribute(attr::GEN_AI_TOOL_TYPE, tool_type.to_owned());
        self
    }
}

span_methods!(ToolCall);

// ------------------------------------------------------------------------------------------

/// Loading model weights: span `load_model {model}`; its duration becomes
/// `llm_model_load_time_seconds` in the collector.
#[derive(Clone, Debug)]
#[must_use = "the span ends when this is dropped"]
pub struct ModelLoad {
    span: Span,
}

pub fn model_load(model: &str) -> ModelLoad {
    let span = tracing::info_span!(target: "agentrace", "load_model", otel.name = %format!("{} {model}", operation::LOAD_MODEL), otel.kind = "internal");
    span.set_attribute(attr::GEN_AI_OPERATION_NAME, operation::LOAD_MODEL);
    span.set_attribute(attr::GEN_AI_REQUEST_MODEL, model.to_owned());
    ModelLoad { span }
}

impl ModelLoad {
    pub fn provider(self, provider: &str) -> Self {
        self.span.set_attribute(attr::GEN_AI_PROVIDER_NAME, provider.to_owned());
        self
    }
}

span_methods!(ModelLoad);
