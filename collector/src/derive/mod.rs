//! Derive: canonical spans in, metric observations out. Pure and synchronous: the caller
//! passes `now`, nothing here reads a clock, locks or awaits. The observations go to the
//! registry in `metrics`.
//!
//! Series that are not about an agent (span metrics, evaluations, model loads, the agent's own
//! invocation) come straight from each span. An LLM call's, a tool call's and a step's series
//! are the agent's: they are built as a [`Scoped`] set and counted as soon as the agent is
//! known, which is at once when the span names it, else when the agent graph (`graph`) finds
//! the nearest enclosing agent span in the trace. The graph also holds what needs several
//! spans: the edges between agents, tools and models, and the per-invocation roll-ups.

mod args;
mod graph;

use std::sync::Arc;

use agentrace_semconv::metric::{self, status};
use agentrace_semconv::{ErrorType, SpanClass};
use smallvec::smallvec;

pub use self::args::{Args, GraphConfig};
use self::graph::AgentGraph;
use crate::cost::{PriceTable, Usage};
use crate::gpu::WindowStats;
use crate::metrics::{Exemplar, Label, Labels, Observation};
use crate::normalize::CanonicalSpan;
use crate::wire::SpanPos;

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

/// What derive learned about one span that the forwarded copy carries: an LLM call's cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpanOutcome {
    /// The LLM call's cost in USD, for `agentrace.cost.usd`.
    pub cost_usd: Option<f64>,
}

/// What the forwarded copy of a span carries besides what arrived (`enrich` adds it).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanFacts {
    pub pos: SpanPos,
    /// `agentrace.cost.usd`.
    pub cost_usd: Option<f64>,
    /// `agentrace.gpu.*`.
    pub gpu: Option<WindowStats>,
    /// An LLM or embedding call: its error texts are content too.
    pub llm: bool,
}

/// The window (start, end, Unix seconds) whose GPU samples an LLM, embedding or model-load span
/// is matched against.
pub fn gpu_window(span: &CanonicalSpan<'_>) -> Option<(f64, f64)> {
    matches!(span.class, SpanClass::Llm | SpanClass::Embedding | SpanClass::ModelLoad)
        .then(|| (span.start_unix_nano as f64 / 1e9, span.end_seconds()))
}

impl Deriver {
    pub fn new(graph: GraphConfig, prices: Arc<PriceTable>) -> Self {
        Self { graph: AgentGraph::new(graph), prices }
    }

    /// Observations of one span (and of what waited for it in its trace); `gpu` is what the
    /// GPU history holds for its window.
    pub fn observe<'a>(
        &mut self,
        span: &CanonicalSpan<'a>,
        gpu: Option<&WindowStats>,
        now: f64,
        out: &mut Vec<Observation<'a>>,
    ) -> SpanOutcome {
        for reason in &span.invalid {
            out.push(Observation::new(
                metric::SELF_SPANS_INVALID_TOTAL,
                smallvec![Label::Borrowed(reason)],
                1.0,
                None,
            ));
        }
        span_metrics(span, out);
        evaluations(span, out);
        let mut outcome = SpanOutcome::default();
        let scoped = match span.class {
            SpanClass::Llm | SpanClass::Embedding => {
                let usage = Usage::of(&span.fields);
                outcome.cost_usd =
                    usage.map(|usage| self.prices.cost(span.fields.model.unwrap_or_default(), usage));
                Some(Scoped::llm(span, outcome.cost_usd, gpu))
            }
            SpanClass::Tool => Some(Scoped::new(span, Call::Tool, &[span.fields.tool])),
            SpanClass::Step => Some(Scoped::new(span, Call::Step, &[span.fields.step])),
            SpanClass::ModelLoad => {
                model_load(span, gpu, out);
                None
            }
            SpanClass::Agent => {
                agent_invocation(span, out);
                None
            }
            SpanClass::Other => None,
        };
        self.graph.insert(span, scoped, now, out);
        outcome
    }

    /// What the agent-graph window holds, in bytes.
    #[cfg(test)]
    pub fn graph_bytes(&self) -> usize {
        self.graph.bytes()
    }

    /// Flushes traces whose pairing window has passed (invocation roll-ups, edges that never
    /// paired, spans whose agent never arrived) and reports the spans still waiting.
    pub fn tick(&mut self, now: f64, out: &mut Vec<Observation>) {
        self.graph.flush_idle(now, out);
    }

    pub fn open_traces(&self) -> usize {
        self.graph.open_traces()
    }
}

/// An agent's series for one LLM call, tool call or step, ready to be counted once the agent
/// is known: labels borrowed from the span, or owned while the span waits for its agent.
#[derive(Clone, Debug)]
pub(crate) struct Scoped<'a> {
    /// The service, then what the call names: an LLM call's provider, model and operation, a
    /// tool, a step.
    labels: Labels<'a>,
    /// The agent the span names itself; `None` when the trace has to tell.
    pub(crate) agent: Option<Label<'a>>,
    call: Call,
    duration: f64,
    weight: f64,
    /// Where the exemplars point: the span that was counted.
    exemplar: Exemplar,
    failed: bool,
}

#[derive(Clone, Copy, Debug)]
enum Call {
    Llm(LlmFigures),
    Tool,
    Step,
}

#[derive(Clone, Copy, Debug)]
struct LlmFigures {
    error: Option<ErrorType>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    /// Seconds (normalize drops one longer than the call).
    first_token: Option<f64>,
    cost: Option<f64>,
    /// GPU-seconds and joules in the call's window.
    gpu: Option<(f64, f64)>,
}

impl<'a> Scoped<'a> {
    fn new(span: &CanonicalSpan<'a>, call: Call, names: &[Option<&'a str>]) -> Self {
        let mut labels: Labels<'a> = smallvec![Label::cut(span.service)];
        labels.extend(names.iter().map(|name| field(*name)));
        Self {
            labels,
            agent: span.fields.agent.map(Label::cut),
            call,
            duration: span.duration_seconds(),
            weight: span.weight,
            exemplar: exemplar_of(span, 0.0),
            failed: span.failed(),
        }
    }

    /// An LLM or embedding call.
    fn llm(span: &CanonicalSpan<'a>, cost: Option<f64>, gpu: Option<&WindowStats>) -> Self {
        let fields = &span.fields;
        let figures = LlmFigures {
            error: span.error,
            input_tokens: fields.input_tokens,
            output_tokens: fields.output_tokens,
            first_token: fields.time_to_first_token,
            cost,
            gpu: gpu.map(|stats| (stats.gpu_seconds, stats.energy_joules)),
        };
        Self::new(span, Call::Llm(figures), &[fields.provider, fields.model, fields.operation])
    }

    /// The same series with labels of their own (shared through `share`), to keep while the
    /// span waits for its agent.
    pub(crate) fn to_owned(&self, share: &mut impl FnMut(&str) -> Arc<str>) -> Scoped<'static> {
        let mut own = |label: &Label<'_>| Label::Shared(share(label));
        Scoped {
            labels: self.labels.iter().map(&mut own).collect(),
            agent: self.agent.as_ref().map(own),
            call: self.call,
            duration: self.duration,
            weight: self.weight,
            exemplar: self.exemplar,
            failed: self.failed,
        }
    }

    /// One observation of these series, its exemplar pointing at the span.
    fn observation<'o>(&self, metric: &'static str, labels: Labels<'o>, value: f64) -> Observation<'o> {
        let exemplar = Some(Exemplar { value, ..self.exemplar });
        Observation { metric, labels, value, weight: self.weight, exemplar }
    }

    /// The service, `agent`, then the call's first `names` labels.
    fn label_set<'o>(&self, agent: &Label<'o>, names: usize) -> Labels<'o>
    where
        'a: 'o,
    {
        let mut labels: Labels<'o> = smallvec![self.labels[0].clone(), agent.clone()];
        for name in &self.labels[1..=names] {
            labels.push(name.clone());
        }
        labels
    }

    /// Counts the series for `agent` (a held span's series, owning their labels, count into
    /// observations of any lifetime).
    pub(crate) fn emit<'o>(&self, agent: Label<'o>, out: &mut Vec<Observation<'o>>)
    where
        'a: 'o,
    {
        let status = Label::Borrowed(if self.failed { status::ERROR } else { status::OK });
        match self.call {
            Call::Llm(figures) => self.emit_llm(&figures, &agent, status, out),
            Call::Tool => {
                let mut labels = self.label_set(&agent, 1);
                labels.push(status);
                out.push(self.observation(metric::AGENT_TOOL_CALLS_TOTAL, labels.clone(), 1.0));
                out.push(self.observation(metric::AGENT_TOOL_CALL_DURATION_SECONDS, labels, self.duration));
            }
            Call::Step => {
                let labels = self.label_set(&agent, 1);
                out.push(self.observation(metric::AGENT_STEPS_TOTAL, labels.clone(), 1.0));
                out.push(self.observation(metric::AGENT_STEP_DURATION_SECONDS, labels, self.duration));
            }
        }
    }

    fn emit_llm<'o>(
        &self,
        llm: &LlmFigures,
        agent: &Label<'o>,
        status: Label<'o>,
        out: &mut Vec<Observation<'o>>,
    ) where
        'a: 'o,
    {
        let mut record = |metric, labels, value| out.push(self.observation(metric, labels, value));
        // service, agent, provider, model; then the operation.
        let base = self.label_set(agent, 2);
        let with_operation = self.label_set(agent, 3);
        let mut requests = with_operation.clone();
        requests.push(status);
        record(metric::LLM_REQUESTS_TOTAL, requests, 1.0);
        record(metric::LLM_INFERENCE_LATENCY_SECONDS, with_operation.clone(), self.duration);
        if let Some(error) = llm.error {
            let mut labels = base.clone();
            labels.push(Label::Borrowed(error.as_str()));
            record(metric::LLM_INFERENCE_ERRORS_TOTAL, labels, 1.0);
        }
        if let Some(tokens) = llm.input_tokens {
            record(metric::LLM_PROMPT_TOKENS_TOTAL, base.clone(), tokens as f64);
        }
        if let Some(tokens) = llm.output_tokens {
            record(metric::LLM_RESPONSE_TOKENS_TOTAL, base.clone(), tokens as f64);
        }
        if let Some(first_token) = llm.first_token {
            record(metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS, base.clone(), first_token);
        }
        let decode_seconds = self.duration - llm.first_token.unwrap_or(0.0);
        if let Some(tokens) = llm.output_tokens.filter(|tokens| *tokens > 0 && decode_seconds > 0.0) {
            record(metric::LLM_OUTPUT_TOKENS_PER_SECOND, base.clone(), tokens as f64 / decode_seconds);
        }
        if let Some((gpu_seconds, joules)) = llm.gpu {
            // service, agent, model.
            let labels: Labels<'o> = smallvec![self.labels[0].clone(), agent.clone(), self.labels[2].clone()];
            record(metric::LLM_GPU_SECONDS_TOTAL, labels.clone(), gpu_seconds);
            record(metric::LLM_GPU_ENERGY_JOULES_TOTAL, labels, joules);
        }
        if let Some(cost) = llm.cost {
            record(metric::LLM_COST_USD_TOTAL, base, cost);
        }
    }
}

/// The nodes an agent-graph edge joins, and the services that run them.
pub(crate) struct EdgeLabels {
    pub client: Arc<str>,
    pub server: Arc<str>,
    pub client_service: Arc<str>,
    pub server_service: Arc<str>,
}

/// One call along an agent-graph edge (Tempo's service-graph series).
pub(crate) fn edge(
    nodes: EdgeLabels,
    failed: bool,
    duration: f64,
    weight: f64,
    exemplar: Exemplar,
    out: &mut Vec<Observation>,
) {
    let EdgeLabels { client, server, client_service, server_service } = nodes;
    let labels: Labels = smallvec![
        Label::Shared(client),
        Label::Shared(server),
        Label::Borrowed(""),
        Label::Shared(client_service),
        Label::Shared(server_service),
    ];
    let mut record = |metric, value| {
        let labels = labels.clone();
        out.push(Observation {
            metric,
            labels,
            value,
            weight,
            exemplar: Some(Exemplar { value, ..exemplar }),
        });
    };
    if failed {
        record(metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL, 1.0);
    }
    record(metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS, duration);
    record(metric::SERVICE_GRAPH_REQUEST_TOTAL, 1.0);
}

/// What one agent invocation did, counted when its trace closes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RollUp {
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub tokens: u64,
}

impl RollUp {
    pub fn add(&mut self, other: RollUp) {
        self.llm_calls = self.llm_calls.saturating_add(other.llm_calls);
        self.tool_calls = self.tool_calls.saturating_add(other.tool_calls);
        self.tokens = self.tokens.saturating_add(other.tokens);
    }
}

/// An invocation's roll-up: its LLM calls, tool calls and tokens (runaway loops show in the
/// tails of these histograms).
pub(crate) fn roll_up(
    service: &Arc<str>,
    agent: &Arc<str>,
    calls: &RollUp,
    weight: f64,
    exemplar: Exemplar,
    out: &mut Vec<Observation>,
) {
    let labels: Labels = smallvec![Label::Shared(service.clone()), Label::Shared(agent.clone())];
    for (metric, value) in [
        (metric::AGENT_INVOCATION_LLM_CALLS, f64::from(calls.llm_calls)),
        (metric::AGENT_INVOCATION_TOOL_CALLS, f64::from(calls.tool_calls)),
        (metric::AGENT_INVOCATION_TOKENS, calls.tokens as f64),
    ] {
        let exemplar = Some(Exemplar { value, ..exemplar });
        out.push(Observation { metric, labels: labels.clone(), value, weight, exemplar });
    }
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

fn field(value: Option<&str>) -> Label<'_> {
    Label::cut(value.unwrap_or_default())
}

fn evaluations<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    for (name, score) in &span.evaluations {
        push(
            out,
            metric::LLM_EVALUATION_SCORE,
            smallvec![Label::cut(span.service), Label::cut(name)],
            *score,
            span,
        );
    }
}

/// The load time, and the GPU time of the load's window: a model load is the server's, not an
/// agent's, so it counts under the agent the span names (usually none).
fn model_load<'a>(span: &CanonicalSpan<'a>, gpu: Option<&WindowStats>, out: &mut Vec<Observation<'a>>) {
    let labels = smallvec![Label::cut(span.service), field(span.fields.model)];
    out.push(Observation::new(metric::LLM_MODEL_LOAD_TIME_SECONDS, labels, span.duration_seconds(), None));
    let Some(stats) = gpu else { return };
    let labels: Labels<'a> =
        smallvec![Label::cut(span.service), field(span.fields.agent), field(span.fields.model)];
    push(out, metric::LLM_GPU_SECONDS_TOTAL, labels.clone(), stats.gpu_seconds, span);
    push(out, metric::LLM_GPU_ENERGY_JOULES_TOTAL, labels, stats.energy_joules, span);
}

fn agent_invocation<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let service = Label::cut(span.service);
    let agent = field(span.fields.agent);
    let status = Label::Borrowed(if span.failed() { status::ERROR } else { status::OK });
    push(out, metric::AGENT_INVOCATIONS_TOTAL, smallvec![service.clone(), agent.clone(), status], 1.0, span);
    let duration = span.duration_seconds();
    push(out, metric::AGENT_INVOCATION_DURATION_SECONDS, smallvec![service, agent], duration, span);
}

/// Tempo metrics-generator parity: every span, by service, name, kind and status code.
fn span_metrics<'a>(span: &CanonicalSpan<'a>, out: &mut Vec<Observation<'a>>) {
    let kind = Label::Borrowed(span.kind.as_str_name());
    let status_code = Label::Borrowed(span.status.as_str_name());
    let labels = smallvec![Label::cut(span.service), Label::cut(span.name), kind, status_code];
    push(out, metric::SPANMETRICS_CALLS_TOTAL, labels.clone(), 1.0, span);
    push(out, metric::SPANMETRICS_LATENCY, labels, span.duration_seconds(), span);
}

#[cfg(test)]
mod attribution_tests;
#[cfg(test)]
mod tests;
