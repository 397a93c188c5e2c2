//! Every metric the collector serves: name, help, type, labels and buckets, in the order
//! `/metrics` renders them. The labels are the allow-list: derive can set no other.

use agentrace_semconv::buckets;
use agentrace_semconv::metric::{self, label};

mod own_families;
mod spec_families;

/// What kind of Prometheus metric a family is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// Which names a family belongs to (`--metric-names`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Always served.
    Always,
    /// agentrace's name for what the GenAI conventions also name: not served with `otel`.
    Own,
    /// The GenAI conventions' name: served with `otel` and `both`.
    Spec,
}

/// One metric family's definition.
#[derive(Debug)]
pub struct Definition {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    /// Whether idle series expire. The collector's own counters never do.
    pub expires: bool,
    pub naming: Naming,
    /// A counter that counts the samples of this histogram family (the same labels, the same
    /// weights): it has no series of its own and is read from the histogram's, so that a span
    /// costs one series update for both.
    pub samples_of: Option<&'static str>,
}

const fn derived(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
) -> Definition {
    Definition { name, help, kind, labels, expires: true, naming: Naming::Always, samples_of: None }
}

/// A counter of the samples of the histogram family `histogram`, which has the same labels.
const fn sample_count(
    name: &'static str,
    help: &'static str,
    histogram: &'static str,
    labels: &'static [&'static str],
) -> Definition {
    Definition { samples_of: Some(histogram), ..derived(name, help, Kind::Counter, labels) }
}

/// An agentrace family the GenAI conventions name too.
const fn own_named(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
) -> Definition {
    Definition { naming: Naming::Own, ..derived(name, help, kind, labels) }
}

/// A GenAI conventions family.
const fn spec_named(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
) -> Definition {
    Definition { naming: Naming::Spec, ..derived(name, help, kind, labels) }
}

/// A gauge the GPU sampler rewrites whole at every sample; it does not expire on idleness.
const fn sampled(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Definition {
    own(name, help, Kind::Gauge, labels)
}

const fn own(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
) -> Definition {
    Definition { name, help, kind, labels, expires: false, naming: Naming::Always, samples_of: None }
}

/// A gauge of the last synthetic probe of a target; it does not expire on idleness (a probe
/// interval may be longer than the idle timeout).
const fn probed(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Definition {
    own(name, help, Kind::Gauge, labels)
}

const PROBE_LABELS: &[&str] = &[label::TARGET, label::MODEL];
const GPU_SPAN_LABELS: &[&str] = &[label::SERVICE, label::AGENT, label::MODEL];
const GPU_LABELS: &[&str] = &[label::GPU, label::UUID, label::NAME];
const GPU_PROCESS_LABELS: &[&str] =
    &[label::GPU, label::PID, label::CONTAINER, label::POD, label::NAMESPACE, label::SERVICE];
const LLM_LABELS: &[&str] = &[label::SERVICE, label::AGENT, label::PROVIDER, label::MODEL];
const LLM_OP_LABELS: &[&str] =
    &[label::SERVICE, label::AGENT, label::PROVIDER, label::MODEL, label::OPERATION];
const AGENT_LABELS: &[&str] = &[label::SERVICE, label::AGENT];
const EDGE_LABELS: &[&str] =
    &[label::CLIENT, label::SERVER, label::CONNECTION_TYPE, label::CLIENT_SERVICE, label::SERVER_SERVICE];
const SPAN_LABELS: &[&str] = &[label::SERVICE, label::SPAN_NAME, label::SPAN_KIND, label::STATUS_CODE];

/// Every family: the derived ones, the collector's own, then the GenAI conventions'.
pub fn all() -> impl Iterator<Item = &'static Definition> {
    CATALOGUE.iter().chain(own_families::OWN).chain(spec_families::SPEC)
}

pub const CATALOGUE: &[Definition] = &[
    derived(
        metric::LLM_REQUESTS_TOTAL,
        "LLM and embedding calls.",
        Kind::Counter,
        &[label::SERVICE, label::AGENT, label::PROVIDER, label::MODEL, label::OPERATION, label::STATUS],
    ),
    own_named(
        metric::LLM_INFERENCE_LATENCY_SECONDS,
        "Duration of LLM and embedding calls.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        LLM_OP_LABELS,
    ),
    own_named(metric::LLM_PROMPT_TOKENS_TOTAL, "Input (prompt) tokens.", Kind::Counter, LLM_LABELS),
    own_named(metric::LLM_RESPONSE_TOKENS_TOTAL, "Output (response) tokens.", Kind::Counter, LLM_LABELS),
    own_named(
        metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS,
        "Time to the first streamed token.",
        Kind::Histogram(buckets::TIME_TO_FIRST_TOKEN_SECONDS),
        LLM_LABELS,
    ),
    derived(
        metric::LLM_OUTPUT_TOKENS_PER_SECOND,
        "Decode speed of each call: output tokens over the time after the first token.",
        Kind::Histogram(buckets::OUTPUT_TOKENS_PER_SECOND),
        LLM_LABELS,
    ),
    derived(
        metric::LLM_INFERENCE_ERRORS_TOTAL,
        "Failed LLM and embedding calls by normalised error type.",
        Kind::Counter,
        &[label::SERVICE, label::AGENT, label::PROVIDER, label::MODEL, label::TYPE],
    ),
    derived(
        metric::LLM_MODEL_LOAD_TIME_SECONDS,
        "Duration of the last model load.",
        Kind::Gauge,
        &[label::SERVICE, label::MODEL],
    ),
    derived(
        metric::LLM_COST_USD_TOTAL,
        "Cost of LLM calls in US dollars, from tokens and the price table.",
        Kind::Counter,
        LLM_LABELS,
    ),
    own_named(
        metric::LLM_CACHE_READ_TOKENS_TOTAL,
        "Input tokens read from the provider's prompt cache (part of the prompt tokens).",
        Kind::Counter,
        LLM_LABELS,
    ),
    own_named(
        metric::LLM_CACHE_WRITE_TOKENS_TOTAL,
        "Input tokens written to the provider's prompt cache (part of the prompt tokens).",
        Kind::Counter,
        LLM_LABELS,
    ),
    own_named(
        metric::LLM_REASONING_TOKENS_TOTAL,
        "Reasoning tokens (part of the response tokens).",
        Kind::Counter,
        LLM_LABELS,
    ),
    derived(
        metric::LLM_USAGE_MISSING_TOTAL,
        "Successful LLM calls that reported no token usage: their tokens and cost are not counted.",
        Kind::Counter,
        LLM_LABELS,
    ),
    derived(
        metric::LLM_GUARDRAIL_RESULTS_TOTAL,
        "Guardrail results, by guardrail and the provider's own decision value.",
        Kind::Counter,
        &[label::SERVICE, label::AGENT, label::GUARDRAIL, label::DECISION],
    ),
    derived(
        metric::MCP_CLIENT_OPERATION_DURATION_SECONDS,
        "MCP operations as the client sees them, by calling agent, method and tool.",
        Kind::Histogram(buckets::MCP_SECONDS),
        &[label::SERVICE, label::AGENT, label::METHOD, label::TOOL, label::STATUS],
    ),
    derived(
        metric::MCP_SERVER_OPERATION_DURATION_SECONDS,
        "MCP operations as the server sees them, by method and tool.",
        Kind::Histogram(buckets::MCP_SECONDS),
        &[label::SERVICE, label::METHOD, label::TOOL, label::STATUS],
    ),
    derived(
        metric::LLM_EVALUATION_SCORE,
        "Evaluation scores of LLM outputs, by evaluation.",
        Kind::Histogram(buckets::EVALUATION_SCORE),
        &[label::SERVICE, label::EVALUATION],
    ),
    derived(
        metric::LLM_GPU_SECONDS_TOTAL,
        "GPU busy time (utilization × seconds) inside LLM and model-load spans.",
        Kind::Counter,
        GPU_SPAN_LABELS,
    ),
    derived(
        metric::LLM_GPU_ENERGY_JOULES_TOTAL,
        "GPU energy drawn inside LLM and model-load spans.",
        Kind::Counter,
        GPU_SPAN_LABELS,
    ),
    derived(
        metric::LLM_GPU_COST_USD_TOTAL,
        "Cost of the GPU time inside LLM and model-load spans, at GPU-hour prices (self-hosted models).",
        Kind::Counter,
        GPU_SPAN_LABELS,
    ),
    derived(
        metric::LLM_CACHE_SAVINGS_USD_TOTAL,
        "What prompt-cache reads saved against the input price, in US dollars.",
        Kind::Counter,
        LLM_LABELS,
    ),
    derived(
        metric::LLM_LOG_ERRORS_TOTAL,
        "Log records of an error, and lines a log rule calls errors, by error type.",
        Kind::Counter,
        &[label::SERVICE, label::TYPE],
    ),
    derived(metric::LLM_LOG_EVENTS_TOTAL, "Log lines a log rule counts.", Kind::Counter, &[label::SERVICE, label::RULE]),
    derived(metric::LLM_LOG_VALUE, "The last value a log rule read.", Kind::Gauge, &[label::SERVICE, label::RULE]),
    derived(
        metric::LLM_LOG_SECONDS,
        "Durations log rules read.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        &[label::SERVICE, label::RULE],
    ),
    probed(metric::LLM_PROBE_SUCCESS, "Whether the last synthetic probe of a target succeeded (1) or not (0).", PROBE_LABELS),
    probed(
        metric::LLM_PROBE_DURATION_SECONDS,
        "Duration of the last synthetic probe of a target: to its first token, and in all.",
        &[label::TARGET, label::MODEL, label::PHASE],
    ),
    probed(
        metric::LLM_PROBE_OUTPUT_TOKENS_PER_SECOND,
        "Output tokens per second after the first, in the last synthetic probe of a target that streamed.",
        PROBE_LABELS,
    ),
    sampled(metric::GPU_UTILIZATION_RATIO, "GPU utilization, 0 to 1.", GPU_LABELS),
    sampled(metric::GPU_MEMORY_USED_BYTES, "GPU memory in use.", GPU_LABELS),
    sampled(metric::GPU_MEMORY_TOTAL_BYTES, "GPU memory in all.", GPU_LABELS),
    sampled(metric::GPU_TEMPERATURE_CELSIUS, "GPU temperature.", GPU_LABELS),
    sampled(metric::GPU_POWER_WATTS, "GPU power draw.", GPU_LABELS),
    sampled(metric::GPU_PROCESS_MEMORY_USED_BYTES, "GPU memory used by a process.", GPU_PROCESS_LABELS),
    sampled(
        metric::GPU_PROCESS_UTILIZATION_RATIO,
        "GPU (SM) utilization of a process, 0 to 1.",
        GPU_PROCESS_LABELS,
    ),
    derived(
        metric::AGENT_INVOCATIONS_TOTAL,
        "Agent invocations.",
        Kind::Counter,
        &[label::SERVICE, label::AGENT, label::STATUS],
    ),
    own_named(
        metric::AGENT_INVOCATION_DURATION_SECONDS,
        "Duration of agent invocations.",
        Kind::Histogram(buckets::AGENT_DURATION_SECONDS),
        AGENT_LABELS,
    ),
    own_named(
        metric::AGENT_INVOCATION_LLM_CALLS,
        "LLM calls made directly by one agent invocation.",
        Kind::Histogram(buckets::CALLS_PER_INVOCATION),
        AGENT_LABELS,
    ),
    own_named(
        metric::AGENT_INVOCATION_TOOL_CALLS,
        "Tool calls made directly by one agent invocation.",
        Kind::Histogram(buckets::CALLS_PER_INVOCATION),
        AGENT_LABELS,
    ),
    derived(
        metric::AGENT_INVOCATION_TOKENS,
        "Input plus output tokens of the LLM calls of one agent invocation.",
        Kind::Histogram(buckets::TOKENS_PER_INVOCATION),
        AGENT_LABELS,
    ),
    sample_count(
        metric::AGENT_STEPS_TOTAL,
        "Agent steps.",
        metric::AGENT_STEP_DURATION_SECONDS,
        &[label::SERVICE, label::AGENT, label::STEP],
    ),
    derived(
        metric::AGENT_STEP_DURATION_SECONDS,
        "Duration of agent steps.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        &[label::SERVICE, label::AGENT, label::STEP],
    ),
    derived(
        metric::AGENT_TOOL_CALLS_TOTAL,
        "Tool calls.",
        Kind::Counter,
        &[label::SERVICE, label::AGENT, label::TOOL, label::STATUS],
    ),
    own_named(
        metric::AGENT_TOOL_CALL_DURATION_SECONDS,
        "Duration of tool calls.",
        Kind::Histogram(buckets::LLM_DURATION_SECONDS),
        &[label::SERVICE, label::AGENT, label::TOOL, label::STATUS],
    ),
    derived(
        metric::AGENT_CONVERSATION_TURNS,
        "Requests (traces) of one conversation, recorded once it has been idle.",
        Kind::Histogram(buckets::CALLS_PER_INVOCATION),
        AGENT_LABELS,
    ),
    derived(
        metric::AGENT_CONVERSATION_TOKENS,
        "Input plus output tokens of one conversation's LLM calls.",
        Kind::Histogram(buckets::TOKENS_PER_INVOCATION),
        AGENT_LABELS,
    ),
    derived(
        metric::AGENT_CONVERSATION_COST_USD,
        "Cost of one conversation's LLM calls (API and GPU time), in US dollars.",
        Kind::Histogram(buckets::CONVERSATION_COST_USD),
        AGENT_LABELS,
    ),
    derived(
        metric::AGENT_CONVERSATION_DURATION_SECONDS,
        "Length of one conversation, from its first request to its last answer.",
        Kind::Histogram(buckets::CONVERSATION_SECONDS),
        AGENT_LABELS,
    ),
    derived(
        metric::AGENT_LOOP_DETECTED_TOTAL,
        "Agent invocations caught in a loop, by kind: a repeated tool call, a delegation cycle, runaway context growth.",
        Kind::Counter,
        &[label::SERVICE, label::AGENT, label::KIND],
    ),
    sample_count(
        metric::SERVICE_GRAPH_REQUEST_TOTAL,
        "Calls between agents, tools and models.",
        metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS,
        EDGE_LABELS,
    ),
    derived(
        metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL,
        "Failed calls between agents, tools and models.",
        Kind::Counter,
        EDGE_LABELS,
    ),
    derived(
        metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS,
        "Duration of calls between agents, tools and models, as seen by the callee.",
        Kind::Histogram(buckets::TEMPO_SECONDS),
        EDGE_LABELS,
    ),
    sample_count(metric::SPANMETRICS_CALLS_TOTAL, "Spans.", metric::SPANMETRICS_LATENCY, SPAN_LABELS),
    derived(
        metric::SPANMETRICS_LATENCY,
        "Span durations.",
        Kind::Histogram(buckets::TEMPO_SECONDS),
        SPAN_LABELS,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_counters_end_in_total() {
        let mut seen = HashSet::new();
        for definition in all() {
            assert!(seen.insert(definition.name), "{} twice", definition.name);
            if definition.kind == Kind::Counter {
                assert!(definition.name.ends_with("_total"), "{}", definition.name);
            }
        }
    }

    #[test]
    fn sample_counts_name_a_histogram_always_served_with_their_labels() {
        let counted: Vec<_> = all().filter(|definition| definition.samples_of.is_some()).collect();
        assert_eq!(counted.len(), 3);
        for counter in counted {
            let histogram = all().find(|definition| Some(definition.name) == counter.samples_of);
            let histogram = histogram.unwrap_or_else(|| panic!("{}: no such histogram", counter.name));
            assert!(matches!(histogram.kind, Kind::Histogram(_)), "{}", counter.name);
            assert_eq!(histogram.labels, counter.labels, "{}", counter.name);
            assert_eq!(histogram.samples_of, None, "{}", counter.name);
            // Served whenever the counter is, and expiring with it.
            assert_eq!(
                (histogram.naming, counter.naming),
                (Naming::Always, Naming::Always),
                "{}",
                counter.name
            );
            assert_eq!(histogram.expires, counter.expires, "{}", counter.name);
        }
    }

    #[test]
    fn label_values_fit_inline() {
        let most = all().map(|definition| definition.labels.len()).max();
        assert_eq!(
            most,
            Some(crate::metrics::label::MAX_LABELS),
            "MAX_LABELS is the catalogue's widest family"
        );
    }
}
