//! The GenAI conventions' metric families (v0.1.0), in the Prometheus form the OpenTelemetry
//! Collector's exporter gives them, with the conventions' bucket advice. Served with
//! `--metric-names otel|both`. The MCP families are served once, under their spec names, in
//! the main catalogue.

use agentrace_semconv::buckets;
use agentrace_semconv::metric::spec;

use super::{spec_named, Definition, Kind};

const SPEC_CALL: &[&str] = &[
    spec::label::SERVICE_NAME,
    spec::label::OPERATION_NAME,
    spec::label::PROVIDER_NAME,
    spec::label::REQUEST_MODEL,
];
const SPEC_CALL_ERROR: &[&str] = &[
    spec::label::SERVICE_NAME,
    spec::label::OPERATION_NAME,
    spec::label::PROVIDER_NAME,
    spec::label::REQUEST_MODEL,
    spec::label::ERROR_TYPE,
];
const SPEC_USAGE: &[&str] = &[
    spec::label::SERVICE_NAME,
    spec::label::OPERATION_NAME,
    spec::label::PROVIDER_NAME,
    spec::label::REQUEST_MODEL,
    spec::label::TOKEN_MODALITY,
];
const SPEC_AGENT: &[&str] = &[spec::label::SERVICE_NAME, spec::label::AGENT_NAME];

/// The GenAI conventions' families, with their bucket advice.
pub(super) const SPEC: &[Definition] = &[
    spec_named(
        spec::INFERENCE_DURATION,
        "GenAI model inference duration.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        SPEC_CALL_ERROR,
    ),
    spec_named(
        spec::OPERATION_DURATION,
        "GenAI operation duration (embeddings).",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        SPEC_CALL_ERROR,
    ),
    spec_named(
        spec::TIME_TO_FIRST_CHUNK,
        "Time to the first streamed chunk.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        SPEC_CALL,
    ),
    spec_named(
        spec::TIME_PER_OUTPUT_CHUNK,
        "Time per output chunk after the first.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        SPEC_CALL,
    ),
    spec_named(spec::USAGE_INPUT_TOKENS, "Input tokens.", Kind::Counter, SPEC_USAGE),
    spec_named(spec::USAGE_OUTPUT_TOKENS, "Output tokens.", Kind::Counter, SPEC_USAGE),
    spec_named(
        spec::USAGE_CACHE_READ_INPUT_TOKENS,
        "Input tokens read from the prompt cache.",
        Kind::Counter,
        SPEC_USAGE,
    ),
    spec_named(
        spec::USAGE_CACHE_WRITE_INPUT_TOKENS,
        "Input tokens written to the prompt cache.",
        Kind::Counter,
        SPEC_USAGE,
    ),
    spec_named(spec::USAGE_REASONING_OUTPUT_TOKENS, "Reasoning output tokens.", Kind::Counter, SPEC_USAGE),
    spec_named(
        spec::OPERATION_INPUT_TOKENS,
        "Input tokens per inference.",
        Kind::Histogram(buckets::TOKENS),
        SPEC_CALL_ERROR,
    ),
    spec_named(
        spec::OPERATION_OUTPUT_TOKENS,
        "Output tokens per inference.",
        Kind::Histogram(buckets::TOKENS),
        SPEC_CALL_ERROR,
    ),
    spec_named(
        spec::INVOKE_AGENT_DURATION,
        "Agent invocation duration.",
        Kind::Histogram(buckets::AGENT_DURATION_SECONDS),
        &[spec::label::SERVICE_NAME, spec::label::AGENT_NAME, spec::label::ERROR_TYPE],
    ),
    spec_named(
        spec::INVOKE_AGENT_INFERENCE_CALLS,
        "Inference calls of one agent invocation.",
        Kind::Histogram(buckets::CALLS_PER_INVOCATION),
        SPEC_AGENT,
    ),
    spec_named(
        spec::INVOKE_AGENT_TOOL_CALLS,
        "Tool calls of one agent invocation.",
        Kind::Histogram(buckets::CALLS_PER_INVOCATION),
        SPEC_AGENT,
    ),
    spec_named(
        spec::EXECUTE_TOOL_DURATION,
        "Tool execution duration.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        &[
            spec::label::SERVICE_NAME,
            spec::label::TOOL_NAME,
            spec::label::AGENT_NAME,
            spec::label::ERROR_TYPE,
        ],
    ),
];
