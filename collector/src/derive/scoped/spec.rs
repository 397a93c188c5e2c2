//! The GenAI conventions' series (v0.1.0) of a call, as the OpenTelemetry Collector's
//! Prometheus exporter would name them, for `--metric-names otel|both`: inference duration,
//! time to first chunk and per output chunk, the usage counters by token modality, tokens per
//! inference, tool execution duration. Labels follow the conventions' attributes; the agent is
//! a label only where they name it (`gen_ai.agent.name` on tool executions).

use agentrace_semconv::attr::operation;
use agentrace_semconv::dialect::MODALITIES;
use agentrace_semconv::metric::spec;
use smallvec::smallvec;

use super::{LlmFigures, Scoped};
use crate::metrics::{Label, Labels, Observe};

impl Scoped<'_> {
    fn error_label<'o>(&self) -> Label<'o> {
        Label::Borrowed(self.error.map_or("", |error| error.as_str()))
    }
}

/// A model call's series; the scoped labels are service, provider, model, operation.
pub(super) fn inference<'a: 'o, 'o>(scoped: &Scoped<'a>, llm: &LlmFigures, out: &mut impl Observe<'o>) {
    let [service, provider, model, operation] = [0, 1, 2, 3].map(|index| scoped.labels[index].clone());
    let call: Labels<'o> = smallvec![service, operation.clone(), provider, model];
    let with = |last: Label<'o>| {
        let mut labels = call.clone();
        labels.push(last);
        labels
    };
    let with_error = with(scoped.error_label());
    let mut record = |metric, labels: &[Label<'o>], value| scoped.record(out, metric, labels, value);
    // Embeddings are not an inference: they have the general operation duration.
    if &*operation == operation::EMBEDDINGS {
        return record(spec::OPERATION_DURATION, &with_error, scoped.duration);
    }
    record(spec::INFERENCE_DURATION, &with_error, scoped.duration);
    if let Some(first) = llm.first_token {
        record(spec::TIME_TO_FIRST_CHUNK, &call, first);
        if let Some(tokens) = llm.tokens.output_tokens().filter(|tokens| *tokens > 0) {
            record(spec::TIME_PER_OUTPUT_CHUNK, &call, (scoped.duration - first) / tokens as f64);
        }
    }
    let unknown = || Label::Borrowed(spec::UNKNOWN_MODALITY);
    for (metric, total, parts) in [
        (spec::USAGE_INPUT_TOKENS, llm.tokens.input_tokens(), llm.tokens.modalities(false)),
        (spec::USAGE_OUTPUT_TOKENS, llm.tokens.output_tokens(), llm.tokens.modalities(true)),
    ] {
        if parts.iter().any(Option::is_some) {
            for (modality, tokens) in MODALITIES.iter().zip(parts) {
                if let Some(tokens) = tokens {
                    record(metric, &with(Label::Borrowed(modality)), tokens as f64);
                }
            }
        } else {
            // The conventions ask for 0 when a call reported no usage.
            record(metric, &with(unknown()), total.unwrap_or(0) as f64);
        }
    }
    for (metric, tokens) in [
        (spec::USAGE_CACHE_READ_INPUT_TOKENS, llm.tokens.cache_read_tokens()),
        (spec::USAGE_CACHE_WRITE_INPUT_TOKENS, llm.tokens.cache_write_tokens()),
        (spec::USAGE_REASONING_OUTPUT_TOKENS, llm.tokens.reasoning_tokens()),
    ] {
        if let Some(tokens) = tokens {
            record(metric, &with(unknown()), tokens as f64);
        }
    }
    for (metric, tokens) in [
        (spec::OPERATION_INPUT_TOKENS, llm.tokens.input_tokens()),
        (spec::OPERATION_OUTPUT_TOKENS, llm.tokens.output_tokens()),
    ] {
        if let Some(tokens) = tokens {
            record(metric, &with_error, tokens as f64);
        }
    }
}

/// A tool execution: service, tool, agent, error type.
pub(super) fn tool<'a: 'o, 'o>(
    scoped: &Scoped<'a>,
    agent: &Label<'o>,
    tool: Label<'o>,
    out: &mut impl Observe<'o>,
) {
    let labels = [scoped.labels[0].clone(), tool, agent.clone(), scoped.error_label()];
    scoped.record(out, spec::EXECUTE_TOOL_DURATION, &labels, scoped.duration);
}
