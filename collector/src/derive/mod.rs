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
mod conversations;
mod graph;
mod scoped;

use std::sync::Arc;

use agentrace_semconv::metric::{self, status};
use agentrace_semconv::SpanClass;
use smallvec::smallvec;

pub use self::args::{Args, GraphConfig};
pub use self::conversations::{ConversationConfig, Conversations};
use self::graph::AgentGraph;
pub(crate) use self::scoped::Scoped;
use self::scoped::{Call, Money};
use crate::cost::{PriceMemo, PriceTable, Usage};
use crate::gpu::WindowStats;
use crate::metrics::{Exemplar, ExemplarTag, Label, Observation, Observe};
use crate::normalize::CanonicalSpan;
use crate::wire::SpanPos;

/// Turns canonical spans into observations; holds the agent-graph window.
#[derive(Debug)]
pub struct Deriver {
    graph: AgentGraph,
    prices: Arc<PriceTable>,
    /// The prices of the models this worker has seen in `prices`.
    priced: PriceMemo,
    /// Also the GenAI conventions' series.
    spec: bool,
    /// Shared by every worker; the graph adds each closing trace of a conversation to it.
    conversations: Arc<Conversations>,
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
        let conversations = Conversations::new(graph.conversations);
        let graph = AgentGraph::new(graph, conversations.clone());
        Self { spec: graph.spec_names(), graph, prices, priced: PriceMemo::default(), conversations }
    }

    /// The same, following conversations in a table that other workers share.
    pub fn sharing_conversations(mut self, conversations: Arc<Conversations>) -> Self {
        self.graph.share_conversations(conversations.clone());
        Self { conversations, ..self }
    }

    /// Observations of one span (and of what waited for it in its trace); `gpu` is what the
    /// GPU history holds for its window.
    pub fn observe<'a>(
        &mut self,
        span: &CanonicalSpan<'a>,
        gpu: Option<&WindowStats>,
        now: f64,
        out: &mut impl Observe<'a>,
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
            _ if span.fields.mcp_method.is_some() => mcp(span, out),
            SpanClass::Llm | SpanClass::Embedding => {
                let usage = Usage::of(&span.fields);
                let model = span.fields.model.unwrap_or_default();
                let price = usage.and_then(|_| self.priced.price(&self.prices, model));
                let money = Money {
                    api: usage.map(|usage| price.map_or(0.0, |price| price.cost(usage))),
                    cache_savings: price
                        .zip(usage.filter(|usage| usage.cached_input > 0))
                        .map(|(price, usage)| price.cache_savings(usage))
                        .filter(|savings| *savings > 0.0),
                    gpu: gpu.and_then(|stats| self.prices.gpu_cost(&stats.gpu_seconds_by_name)),
                };
                outcome.cost_usd = money.api;
                Some(Scoped::llm(span, money, gpu))
            }
            SpanClass::Tool => Some(Scoped::new(span, Call::Tool, &[span.fields.tool])),
            SpanClass::Step => Some(Scoped::new(span, Call::Step, &[span.fields.step])),
            SpanClass::ModelLoad => {
                let gpu_cost = gpu.and_then(|stats| self.prices.gpu_cost(&stats.gpu_seconds_by_name));
                model_load(span, gpu.map(|stats| (stats, gpu_cost)), out);
                None
            }
            SpanClass::Agent => {
                agent_invocation(span, self.spec, out);
                None
            }
            SpanClass::Other if !span.guardrails.is_empty() => Some(Scoped::guardrails(span)),
            SpanClass::Other => None,
        };
        if span.class != SpanClass::Other && !span.guardrails.is_empty() {
            // The span's own series take its place in the graph: its guardrail results count
            // under the agent it names.
            let guardrails = Scoped::guardrails(span);
            match span.fields.agent {
                Some(agent) => guardrails.emit(Label::cut(agent), out),
                None => guardrails.emit(Label::Borrowed(""), out),
            }
        }
        let scoped = scoped.map(|mut scoped| {
            scoped.spec = self.spec;
            scoped
        });
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
    pub fn tick<'o>(&mut self, now: f64, out: &mut impl Observe<'o>) {
        self.graph.flush_idle(now, out);
        self.conversations.close_idle(now, out);
    }

    pub fn open_traces(&self) -> usize {
        self.graph.open_traces()
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
pub(crate) fn edge<'o>(
    nodes: EdgeLabels,
    failed: bool,
    duration: f64,
    weight: f64,
    exemplar: Exemplar,
    out: &mut impl Observe<'o>,
) {
    let EdgeLabels { client, server, client_service, server_service } = nodes;
    let labels = [
        Label::Shared(client),
        Label::Shared(server),
        Label::Borrowed(""),
        Label::Shared(client_service),
        Label::Shared(server_service),
    ];
    let mut record =
        |metric, value| out.observe(metric, &labels, value, weight, Some(Exemplar { value, ..exemplar }));
    if failed {
        record(metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL, 1.0);
    }
    // `traces_service_graph_request_total` is read from this histogram's samples.
    record(metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS, duration);
}

/// What one agent invocation did, counted when its trace closes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RollUp {
    pub llm_calls: u32,
    pub tool_calls: u32,
    pub tokens: u64,
    /// API and GPU cost of the LLM calls, in USD.
    pub cost: f64,
}

impl RollUp {
    pub fn add(&mut self, other: RollUp) {
        self.llm_calls = self.llm_calls.saturating_add(other.llm_calls);
        self.tool_calls = self.tool_calls.saturating_add(other.tool_calls);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost += other.cost;
    }
}

/// An invocation's roll-up: its LLM calls, tool calls and tokens (runaway loops show in the
/// tails of these histograms).
pub(crate) fn roll_up<'o>(
    service: &Arc<str>,
    agent: &Arc<str>,
    calls: &RollUp,
    (weight, exemplar): (f64, Exemplar),
    spec: bool,
    out: &mut impl Observe<'o>,
) {
    let labels = [Label::Shared(service.clone()), Label::Shared(agent.clone())];
    let (llm_calls, tool_calls) = (f64::from(calls.llm_calls), f64::from(calls.tool_calls));
    let spec_series = [
        (metric::spec::INVOKE_AGENT_INFERENCE_CALLS, llm_calls),
        (metric::spec::INVOKE_AGENT_TOOL_CALLS, tool_calls),
    ];
    for (metric, value) in [
        (metric::AGENT_INVOCATION_LLM_CALLS, llm_calls),
        (metric::AGENT_INVOCATION_TOOL_CALLS, tool_calls),
        (metric::AGENT_INVOCATION_TOKENS, calls.tokens as f64),
    ]
    .into_iter()
    .chain(spec_series.into_iter().filter(|_| spec))
    {
        out.observe(metric, &labels, value, weight, Some(Exemplar { value, ..exemplar }));
    }
}

pub(crate) fn exemplar_of(span: &CanonicalSpan<'_>, value: f64) -> Exemplar {
    Exemplar {
        trace_id: span.trace_id,
        span_id: span.span_id,
        value,
        timestamp: span.end_seconds(),
        conversation: ExemplarTag::default(),
    }
}

fn push<'a>(
    out: &mut impl Observe<'a>,
    metric: &'static str,
    labels: &[Label<'a>],
    value: f64,
    span: &CanonicalSpan<'a>,
) {
    out.observe(metric, labels, value, span.weight, Some(exemplar_of(span, value)));
}

fn field(value: Option<&str>) -> Label<'_> {
    Label::cut(value.unwrap_or_default())
}

fn evaluations<'a>(span: &CanonicalSpan<'a>, out: &mut impl Observe<'a>) {
    for (name, score) in &span.evaluations {
        push(out, metric::LLM_EVALUATION_SCORE, &[Label::cut(span.service), Label::cut(name)], *score, span);
    }
}

/// The load time, and the GPU time of the load's window: a model load is the server's, not an
/// agent's, so it counts under the agent the span names (usually none).
fn model_load<'a>(
    span: &CanonicalSpan<'a>,
    gpu: Option<(&WindowStats, Option<f64>)>,
    out: &mut impl Observe<'a>,
) {
    let labels = smallvec![Label::cut(span.service), field(span.fields.model)];
    out.push(Observation::new(metric::LLM_MODEL_LOAD_TIME_SECONDS, labels, span.duration_seconds(), None));
    let Some((stats, cost)) = gpu else { return };
    let labels = [Label::cut(span.service), field(span.fields.agent), field(span.fields.model)];
    if let Some(cost) = cost {
        push(out, metric::LLM_GPU_COST_USD_TOTAL, &labels, cost, span);
    }
    push(out, metric::LLM_GPU_SECONDS_TOTAL, &labels, stats.gpu_seconds, span);
    push(out, metric::LLM_GPU_ENERGY_JOULES_TOTAL, &labels, stats.energy_joules, span);
}

/// An MCP client operation is the calling agent's; a server operation is the server's own.
fn mcp<'a>(span: &CanonicalSpan<'a>, out: &mut impl Observe<'a>) -> Option<Scoped<'a>> {
    let method = span.fields.mcp_method.unwrap_or_default();
    if span.kind != crate::wire::span::SpanKind::Server {
        return Some(Scoped::mcp_client(span, method));
    }
    let status = Label::Borrowed(if span.failed() { status::ERROR } else { status::OK });
    let labels = [Label::cut(span.service), Label::cut(method), field(span.fields.tool), status];
    push(out, metric::MCP_SERVER_OPERATION_DURATION_SECONDS, &labels, span.duration_seconds(), span);
    None
}

fn agent_invocation<'a>(span: &CanonicalSpan<'a>, spec: bool, out: &mut impl Observe<'a>) {
    let service = Label::cut(span.service);
    let agent = field(span.fields.agent);
    if spec {
        let error = Label::Borrowed(span.error.map_or("", |error| error.as_str()));
        let labels = [service.clone(), agent.clone(), error];
        push(out, metric::spec::INVOKE_AGENT_DURATION, &labels, span.duration_seconds(), span);
    }
    let status = Label::Borrowed(if span.failed() { status::ERROR } else { status::OK });
    let labels = [service, agent, status];
    push(out, metric::AGENT_INVOCATIONS_TOTAL, &labels, 1.0, span);
    let duration = span.duration_seconds();
    push(out, metric::AGENT_INVOCATION_DURATION_SECONDS, &labels[..2], duration, span);
}

/// Tempo metrics-generator parity: every span, by service, name, kind and status code.
fn span_metrics<'a>(span: &CanonicalSpan<'a>, out: &mut impl Observe<'a>) {
    let kind = Label::Borrowed(span.kind.as_str_name());
    let status_code = Label::Borrowed(span.status.as_str_name());
    let labels = [Label::cut(span.service), Label::cut(span.name), kind, status_code];
    // `traces_spanmetrics_calls_total` is read from this histogram's samples.
    push(out, metric::SPANMETRICS_LATENCY, &labels, span.duration_seconds(), span);
}

#[cfg(test)]
mod attribution_tests;
#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod tests;
