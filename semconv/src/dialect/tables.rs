//! One table per dialect, and their precedence. Attribute names come from each project's
//! published conventions:
//!
//! | dialect | source |
//! |---|---|
//! | GenAI | OpenTelemetry GenAI semantic conventions v0.1.0 (`gen_ai.*`, `mcp.*`, `a2a.*`) |
//! | GenAI, deprecated | the same, older names (`gen_ai.system`, `…prompt_tokens`, `…cache_creation…`) |
//! | OpenInference | Arize `openinference-semantic-conventions` (`openinference.span.kind`, `llm.*`) |
//! | OpenLLMetry | Traceloop `opentelemetry-semantic-conventions-ai` (`traceloop.*`, `llm.request.type`) |
//! | OpenLIT | OpenLIT `semcov` (`gen_ai.server.time_to_first_token`, operation values) |
//! | vLLM | vLLM request tracing (`llm_request` span, `gen_ai.latency.*`) |
//!
//! Keys shared between dialects are listed once, in the highest-precedence table that uses
//! them: OpenLLMetry's and OpenLIT's `gen_ai.system` and `gen_ai.usage.prompt_tokens` are
//! read by the deprecated-GenAI table.

use super::{ClassRule, Dialect, Field, SpanNames};
use crate::attr::{self, a2a, mcp, openinference, openlit, openllmetry, operation, vllm};
use crate::SpanClass;

const fn rule(key: &'static str, value: &'static str, class: SpanClass) -> ClassRule {
    ClassRule { key, value: Some(value), class }
}

const fn any_value(key: &'static str, class: SpanClass) -> ClassRule {
    ClassRule { key, value: None, class }
}

/// OpenTelemetry GenAI semantic conventions, current names, plus agentrace's own keys for what
/// they leave out (steps, model loads) and the general `sampling.adjusted_count`.
pub const GENAI: Dialect = Dialect {
    span_names: SpanNames::OperationTarget,
    name: "genai",
    classes: &[
        rule(attr::GEN_AI_OPERATION_NAME, operation::CHAT, SpanClass::Llm),
        rule(attr::GEN_AI_OPERATION_NAME, operation::TEXT_COMPLETION, SpanClass::Llm),
        rule(attr::GEN_AI_OPERATION_NAME, operation::GENERATE_CONTENT, SpanClass::Llm),
        rule(attr::GEN_AI_OPERATION_NAME, operation::EMBEDDINGS, SpanClass::Embedding),
        rule(attr::GEN_AI_OPERATION_NAME, operation::INVOKE_AGENT, SpanClass::Agent),
        rule(attr::GEN_AI_OPERATION_NAME, operation::EXECUTE_TOOL, SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::LOAD_MODEL, SpanClass::ModelLoad),
        rule(attr::GEN_AI_OPERATION_NAME, operation::AGENT_STEP, SpanClass::Step),
        any_value(attr::AGENTRACE_STEP_NAME, SpanClass::Step),
        rule(attr::GEN_AI_OPERATION_NAME, operation::PLAN, SpanClass::Step),
        rule(attr::GEN_AI_OPERATION_NAME, operation::RETRIEVAL, SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[0], SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[1], SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[2], SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[3], SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[4], SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[5], SpanClass::Tool),
        rule(attr::GEN_AI_OPERATION_NAME, operation::MEMORY[6], SpanClass::Tool),
    ],
    fields: &[
        (Field::Operation, attr::GEN_AI_OPERATION_NAME),
        (Field::Provider, attr::GEN_AI_PROVIDER_NAME),
        (Field::Model, attr::GEN_AI_REQUEST_MODEL),
        (Field::Model, attr::GEN_AI_RESPONSE_MODEL),
        (Field::Agent, attr::GEN_AI_AGENT_NAME),
        (Field::Tool, attr::GEN_AI_TOOL_NAME),
        (Field::Step, attr::AGENTRACE_STEP_NAME),
        (Field::InputTokens, attr::GEN_AI_USAGE_INPUT_TOKENS),
        (Field::OutputTokens, attr::GEN_AI_USAGE_OUTPUT_TOKENS),
        (Field::CachedInputTokens, attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        (Field::CacheWriteTokens, attr::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
        (Field::ReasoningTokens, attr::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        (Field::TextInputTokens, attr::GEN_AI_USAGE_TEXT_INPUT_TOKENS),
        (Field::ImageInputTokens, attr::GEN_AI_USAGE_IMAGE_INPUT_TOKENS),
        (Field::AudioInputTokens, attr::GEN_AI_USAGE_AUDIO_INPUT_TOKENS),
        (Field::TextOutputTokens, attr::GEN_AI_USAGE_TEXT_OUTPUT_TOKENS),
        (Field::ImageOutputTokens, attr::GEN_AI_USAGE_IMAGE_OUTPUT_TOKENS),
        (Field::AudioOutputTokens, attr::GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS),
        (Field::TimeToFirstToken, attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK),
        (Field::TimeToFirstToken, attr::GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK),
        (Field::ErrorType, attr::ERROR_TYPE),
        (Field::AdjustedCount, attr::SAMPLING_ADJUSTED_COUNT),
        (Field::Conversation, attr::GEN_AI_CONVERSATION_ID),
        (Field::PromptName, attr::GEN_AI_PROMPT_NAME),
        (Field::PromptVersion, attr::GEN_AI_PROMPT_VERSION),
        (Field::McpMethod, mcp::METHOD_NAME),
        (Field::A2aMethod, a2a::METHOD_NAME),
        (Field::ServerAddress, attr::SERVER_ADDRESS),
    ],
    first_token_events: &[],
    implied_provider: None,
};

/// GenAI names from semantic conventions 1.36 and earlier, still sent by many
/// instrumentations (OpenLLMetry and OpenLIT among them).
pub const GENAI_DEPRECATED: Dialect = Dialect {
    span_names: SpanNames::Whole,
    name: "genai-deprecated",
    classes: &[],
    fields: &[
        (Field::Provider, attr::GEN_AI_SYSTEM),
        (Field::InputTokens, attr::GEN_AI_USAGE_PROMPT_TOKENS),
        (Field::OutputTokens, attr::GEN_AI_USAGE_COMPLETION_TOKENS),
        (Field::CachedInputTokens, attr::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD),
        (Field::ReasoningTokens, attr::GEN_AI_USAGE_REASONING_TOKENS_OLD),
        (Field::CacheWriteTokens, attr::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
        (Field::CacheWriteTokens, attr::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD),
    ],
    first_token_events: &[],
    implied_provider: None,
};

/// OpenInference (Arize Phoenix). CHAIN spans are steps; retrievers and rerankers count as
/// tools, since an agent calls them like one.
pub const OPENINFERENCE: Dialect = Dialect {
    span_names: SpanNames::Whole,
    name: "openinference",
    classes: &[
        rule(openinference::SPAN_KIND, "LLM", SpanClass::Llm),
        rule(openinference::SPAN_KIND, "EMBEDDING", SpanClass::Embedding),
        rule(openinference::SPAN_KIND, "AGENT", SpanClass::Agent),
        rule(openinference::SPAN_KIND, "TOOL", SpanClass::Tool),
        rule(openinference::SPAN_KIND, "CHAIN", SpanClass::Step),
        rule(openinference::SPAN_KIND, "RETRIEVER", SpanClass::Tool),
        rule(openinference::SPAN_KIND, "RERANKER", SpanClass::Tool),
    ],
    fields: &[
        (Field::Model, openinference::LLM_MODEL_NAME),
        (Field::Model, openinference::LLM_REQUEST_MODEL_NAME),
        (Field::Model, openinference::LLM_RESPONSE_MODEL_NAME),
        (Field::Model, openinference::EMBEDDING_MODEL_NAME),
        (Field::Provider, openinference::LLM_PROVIDER),
        (Field::Provider, openinference::LLM_SYSTEM),
        (Field::InputTokens, openinference::TOKEN_COUNT_PROMPT),
        (Field::OutputTokens, openinference::TOKEN_COUNT_COMPLETION),
        (Field::CachedInputTokens, openinference::TOKEN_COUNT_CACHE_READ),
        (Field::ReasoningTokens, openinference::TOKEN_COUNT_REASONING),
        (Field::CacheWriteTokens, openinference::TOKEN_COUNT_CACHE_WRITE),
        (Field::Conversation, openinference::SESSION_ID),
        (Field::Tool, openinference::TOOL_NAME),
        (Field::Agent, openinference::AGENT_NAME),
        (Field::Name, openinference::GRAPH_NODE_ID),
    ],
    first_token_events: &[openinference::FIRST_TOKEN_EVENT],
    implied_provider: None,
};

/// OpenLLMetry (Traceloop). A workflow wraps agents, so it is not one itself; tasks are
/// steps. The entity name is the agent's, tool's or step's name, by class.
pub const OPENLLMETRY: Dialect = Dialect {
    span_names: SpanNames::Whole,
    name: "openllmetry",
    classes: &[
        rule(openllmetry::SPAN_KIND, "agent", SpanClass::Agent),
        rule(openllmetry::SPAN_KIND, "tool", SpanClass::Tool),
        rule(openllmetry::SPAN_KIND, "task", SpanClass::Step),
        rule(openllmetry::REQUEST_TYPE, "chat", SpanClass::Llm),
        rule(openllmetry::REQUEST_TYPE, "completion", SpanClass::Llm),
        rule(openllmetry::REQUEST_TYPE, "embedding", SpanClass::Embedding),
    ],
    fields: &[
        (Field::Operation, openllmetry::REQUEST_TYPE),
        (Field::Name, openllmetry::ENTITY_NAME),
        (Field::Conversation, openllmetry::CONVERSATION_ID),
        (Field::Conversation, openllmetry::SESSION_ID),
    ],
    first_token_events: &[openllmetry::COMPLETION_CHUNK_EVENT],
    implied_provider: None,
};

/// OpenLIT: GenAI names (current and deprecated) plus its own operation values and
/// time-to-first-token attribute.
pub const OPENLIT: Dialect = Dialect {
    span_names: SpanNames::OperationTarget,
    name: "openlit",
    classes: &[
        rule(attr::GEN_AI_OPERATION_NAME, "embedding", SpanClass::Embedding),
        rule(attr::GEN_AI_OPERATION_NAME, "agent", SpanClass::Agent),
        rule(attr::GEN_AI_OPERATION_NAME, "execute_task", SpanClass::Step),
    ],
    fields: &[(Field::TimeToFirstToken, openlit::SERVER_TIME_TO_FIRST_TOKEN)],
    first_token_events: &[],
    implied_provider: None,
};

/// vLLM's request span: no operation attribute (a span with a model and token counts is an
/// LLM call), latencies under `gen_ai.latency.*`, and vLLM itself as the provider.
pub const VLLM: Dialect = Dialect {
    span_names: SpanNames::Whole,
    name: "vllm",
    classes: &[any_value(vllm::LATENCY_E2E, SpanClass::Llm)],
    fields: &[
        (Field::TimeToFirstToken, vllm::LATENCY_TIME_TO_FIRST_TOKEN),
        (Field::CachedInputTokens, vllm::USAGE_CACHED_TOKENS),
    ],
    first_token_events: &[],
    implied_provider: Some(vllm::PROVIDER),
};

/// Every dialect, highest precedence first.
pub const DIALECTS: &[&Dialect] = &[&GENAI, &GENAI_DEPRECATED, &OPENINFERENCE, &OPENLLMETRY, &OPENLIT, &VLLM];

/// Operation names as other dialects spell them, and the GenAI name they stand for.
const OPERATION_ALIASES: &[(&str, &str)] =
    &[("completion", operation::TEXT_COMPLETION), ("embedding", operation::EMBEDDINGS)];

/// The `operation` label of an LLM or embedding call: the GenAI operation name, with other
/// dialects' spellings mapped onto it, and `chat` / `embeddings` when the span does not say.
pub fn canonical_operation(class: SpanClass, raw: Option<&str>) -> Option<&str> {
    let default = match class {
        SpanClass::Llm => operation::CHAT,
        SpanClass::Embedding => operation::EMBEDDINGS,
        _ => return raw,
    };
    let Some(raw) = raw else {
        return Some(default);
    };
    Some(OPERATION_ALIASES.iter().find(|(alias, _)| *alias == raw).map_or(raw, |(_, canonical)| canonical))
}
