//! Derive: canonical spans in, metric observations out. Pure and synchronous: the caller
//! passes `now`, nothing here reads a clock, locks or awaits. The observations go to the
//! registry in `metrics`.
//!
//! Single-span metrics (LLM, agent, step, tool, span metrics) come straight from each span;
//! the agent graph and the per-invocation roll-ups need several spans and live in `graph`.

mod graph;

use std::sync::Arc;

use crate::wire::{span, status as span_status, SpanPos};
use agentrace_semconv::metric::{self, status};
use agentrace_semconv::SpanClass;

use graph::AgentGraph;
pub use graph::GraphConfig;

use crate::args::{self, ArgError};

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Agent graph")]
#[group(id = "agent_graph")]
pub struct Args {
    /// Seconds a trace stays open for agent-graph pairing after its last span [default: 10].
    #[arg(long, env = "AGENTRACE_GRAPH_WAIT_SECS", value_name = "SECS")]
    pub graph_wait_secs: Option<f64>,

    /// Most traces held open for agent-graph pairing [default: 50000].
    #[arg(long, env = "AGENTRACE_GRAPH_MAX_TRACES", value_name = "N")]
    pub graph_max_traces: Option<usize>,
}

impl Args {
    pub fn validate(self) -> Result<GraphConfig, ArgError> {
        Ok(GraphConfig {
            wait_secs: args::seconds(
                "graph-wait-secs",
                self.graph_wait_secs.unwrap_or(graph::DEFAULT_WAIT_SECS),
            )?
            .as_secs_f64(),
            max_traces: args::positive(
                "graph-max-traces",
                self.graph_max_traces.unwrap_or(graph::DEFAULT_MAX_TRACES),
            )?,
            ..GraphConfig::default()
        })
    }
}

use crate::cost::{PriceTable, Usage};
use crate::gpu::WindowStats;
use crate::metrics::{Exemplar, Label, Labels, Observation};
use crate::normalize::CanonicalSpan;
use smallvec::smallvec;

/// Label values longer than this are cut (at a character boundary): a label is for grouping,
/// and a runaway value must not bloat every scrape.
const MAX_LABEL_BYTES: usize = 128;

/// Turns canonical spans into observations; holds the agent-graph window.
#[derive(Debug)]
pub struct Deriver {
    graph: AgentGraph,
    prices: Arc<PriceTable>,
}

impl Default for Deriver {
    fn default() -> Self {
        Self::new(GraphConfig::default(), Arc::new(PriceTable::built_in()))
    }
}

/// What derive learned about one span that the later stages need: the cost to put on the
/// forwarded span, and for LLM and model-load spans, the GPU window to look up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanOutcome<'a> {
    /// The LLM call's cost in USD, for `agentrace.cost.usd`.
    pub cost_usd: Option<f64>,
    pub gpu: Option<GpuQuery<'a>>,
}

/// What the forwarded copy of a span carries besides what arrived (`enrich` adds it).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanFacts {
    pub pos: SpanPos,
    /// `agentrace.cost.usd`.
    pub cost_usd: Option<f64>,
    /// `agentrace.gpu.*`.
    pub gpu: Option<WindowStats>,
}

/// A span's window, to be matched against GPU samples, and how to count what it finds.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuQuery<'a> {
    pub start: f64,
    pub end: f64,
    /// service, agent, model: the labels of `llm_gpu_seconds_total` and its energy twin.
    pub labels: Labels<'a>,
    pub weight: f64,
    pub exemplar: Exemplar,
}

impl Deriver {
    pub fn new(graph: GraphConfig, prices: Arc<PriceTable>) -> Self {
        Self { graph: AgentGraph::new(graph), prices }
    }

    /// Observations of one span. Call [`Self::end_batch`] after the spans of a request.
    pub fn observe<'a>(
        &mut self,
        span: &CanonicalSpan<'a>,
        now: f64,
        out: &mut Vec<Observation<'a>>,
    ) -> SpanOutcome<'a> {
        span_metrics(span, out);
        evaluations(span, out);
        let mut outcome = SpanOutcome::default();
        if matches!(span.class, SpanClass::Llm | SpanClass::Embedding | SpanClass::ModelLoad) {
            outcome.gpu = Some(GpuQuery {
                start: span.start_unix_nano as f64 / 1e9,
                end: span.end_seconds(),
                labels: smallvec![label(span.service), field(span.fields.agent), field(span.fields.model)],
                weight: span.weight,
                exemplar: exemplar_of(span, span.duration_seconds()),
            });
        }
        match span.class {
            SpanClass::Llm | SpanClass::Embedding => outcome.cost_usd = llm_call(span, &self.prices, out),
            SpanClass::ModelLoad => model_load(span, out),
            SpanClass::Agent => agent_invocation(span, out),
            SpanClass::Step => agent_step(span, out),
            SpanClass::Tool => tool_call(span, out),
            SpanClass::Other => {}
        }
        self.graph.insert(span, now, out);
        outcome
    }

    /// Emits the agent-graph edges that the batch completed.
    pub fn end_batch(&mut self, out: &mut Vec<Observation>) {
        self.graph.resolve_touched(out);
    }

    /// Flushes traces whose pairing window has passed: invocation roll-ups and the count of
    /// edges that never paired.
    pub fn tick(&mut self, now: f64, out: &mut Vec<Observation>) {
        self.graph.flush_idle(now, out);
    }

    pub fn open_traces(&self) -> usize {
        self.graph.open_traces()
    }
}

/// GPU time and energy in an LLM or model-load span's window, counted for its service, agent
/// and model.
pub fn gpu_time<'a>(query: &GpuQuery<'a>, stats: &WindowStats, out: &mut Vec<Observation<'a>>) {
    for (metric, value) in [
        (metric::LLM_GPU_SECONDS_TOTAL, stats.gpu_seconds),
        (metric::LLM_GPU_ENERGY_JOULES_TOTAL, stats.energy_joules),
    ] {
        out.push(Observation {
            metric,
            labels: query.labels.clone(),
            value,
            weight: query.weight,
            exemplar: Some(query.exemplar),
        });
    }
}

/// `text` cut at [`MAX_LABEL_BYTES`] (at a character boundary).
pub(crate) fn truncated(text: &str) -> &str {
    if text.len() <= MAX_LABEL_BYTES {
        return text;
    }
    let mut end = MAX_LABEL_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A label value: `text`, cut at [`MAX_LABEL_BYTES`].
pub(crate) fn label(text: &str) -> Label<'_> {
    Label::Borrowed(truncated(text))
}

pub(crate) fn exemplar_of(span: &CanonicalSpan<'_>, value: f64) -> Exemplar {
    Exemplar { trace_id: span.trace_id, span_id: span.span_id, value, timestamp: span.end_seconds() }
}

fn push<'a>(
    out: &mut Vec<Observation<'a>>,
    metric: &'static str,
    labels: Labels<'a>,
    value: f64,
    span: &CanonicalSpan<'a>,
) {
    out.push(Observation {
        metric,
        labels,
        value,
        weight: span.weight,
        exemplar: Some(exemplar_of(span, value)),
    });
}

fn status_of(span: &CanonicalSpan<'_>) -> Label<'static> {
    Label::Borrowed(if span.failed() { status::ERROR } else { status::OK })
}

fn field(value: Option<&str>) -> Label<'_> {
    label(value.unwrap_or_default())
}

/// Returns the call's cost when it reported token usage.
fn llm_call<'a>(
    span: &CanonicalSpan<'a>,
    prices: &PriceTable,
    out: &mut Vec<Observation<'a>>,
) -> Option<f64> {
    let fields = &span.fields;
    let base =
        smallvec![label(span.service), field(fields.agent), field(fields.provider), field(fields.model)];
    let with = |extra: Label<'a>| {
        let mut labels = base.clone();
        labels.push(extra);
        labels
    };
    let operation = field(fields.operation);
    let mut with_status = with(operation.clone());
    with_status.push(status_of(span));
    push(out, metric::LLM_REQUESTS_TOTAL, with_status, 1.0, span);
    push(out, metric::LLM_INFERENCE_LATENCY_SECONDS, with(operation), span.duration_seconds(), span);
    if let Some(error) = span.error {
        push(out, metric::LLM_INFERENCE_ERRORS_TOTAL, with(Label::Borrowed(error.as_str())), 1.0, span);
    }
    if let Some(tokens) = fields.input_tokens {
        push(out, metric::LLM_PROMPT_TOKENS_TOTAL, base.clone(), tokens as f64, span);
    }
    if let Some(tokens) = fields.output_tokens {
        push(out, metric::LLM_RESPONSE_TOKENS_TOTAL, base.clone(), tokens as f64, span);
    }
    if let Some(first_token) = fields.time_to_first_token {
        push(out, metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS, base.clone(), first_token, span);
    }
    let decode_seconds = span.duration_seconds() - fields.time_to_first_token.unwrap_or(0.0);
    if let Some(tokens) = fields.output_tokens.filter(|tokens| *tokens > 0) {
        if decode_seconds > 0.0 {
            push(
                out,
                metric::LLM_OUTPUT_TOKENS_PER_SECOND,
                base.clone(),
                tokens as f64 / decode_seconds,
                span,
            );
        }
    }
    if fields.input_tokens.is_none() && fields.output_tokens.is_none() {
        return None;
    }
    let usage = Usage {
        input: fields.input_tokens.unwrap_or(0),
        output: fields.output_tokens.unwrap_or(0),
        cached_input: fields.cached_input_tokens.unwrap_or(0),
    };
    let cost = prices.cost(fields.model.unwrap_or_default(), usage);
    push(out, metric::LLM_COST_USD_TOTAL, base, cost, span);
    Some(cost)
}

fn evaluations<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    for (name, score) in &span.evaluations {
        push(out, metric::LLM_EVALUATION_SCORE, smallvec![label(span.service), label(name)], *score, span);
    }
}

fn model_load<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let labels = smallvec![label(span.service), field(span.fields.model)];
    out.push(Observation::new(metric::LLM_MODEL_LOAD_TIME_SECONDS, labels, span.duration_seconds(), None));
}

fn agent_invocation<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let service = label(span.service);
    let agent = field(span.fields.agent);
    push(
        out,
        metric::AGENT_INVOCATIONS_TOTAL,
        smallvec![service.clone(), agent.clone(), status_of(span)],
        1.0,
        span,
    );
    push(
        out,
        metric::AGENT_INVOCATION_DURATION_SECONDS,
        smallvec![service, agent],
        span.duration_seconds(),
        span,
    );
}

fn agent_step<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let labels = smallvec![label(span.service), field(span.fields.agent), field(span.fields.step)];
    push(out, metric::AGENT_STEPS_TOTAL, labels.clone(), 1.0, span);
    push(out, metric::AGENT_STEP_DURATION_SECONDS, labels, span.duration_seconds(), span);
}

fn tool_call<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let labels =
        smallvec![label(span.service), field(span.fields.agent), field(span.fields.tool), status_of(span)];
    push(out, metric::AGENT_TOOL_CALLS_TOTAL, labels.clone(), 1.0, span);
    push(out, metric::AGENT_TOOL_CALL_DURATION_SECONDS, labels, span.duration_seconds(), span);
}

/// Tempo metrics-generator parity: every span, by service, name, kind and status code.
fn span_metrics<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let kind = match span.kind {
        span::SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        span::SpanKind::Internal => "SPAN_KIND_INTERNAL",
        span::SpanKind::Server => "SPAN_KIND_SERVER",
        span::SpanKind::Client => "SPAN_KIND_CLIENT",
        span::SpanKind::Producer => "SPAN_KIND_PRODUCER",
        span::SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    };
    let status_code = match span.status {
        span_status::StatusCode::Unset => "STATUS_CODE_UNSET",
        span_status::StatusCode::Ok => "STATUS_CODE_OK",
        span_status::StatusCode::Error => "STATUS_CODE_ERROR",
    };
    let labels =
        smallvec![label(span.service), label(span.name), Label::Borrowed(kind), Label::Borrowed(status_code)];
    push(out, metric::SPANMETRICS_CALLS_TOTAL, labels.clone(), 1.0, span);
    push(out, metric::SPANMETRICS_LATENCY, labels, span.duration_seconds(), span);
}

#[cfg(test)]
mod tests;
