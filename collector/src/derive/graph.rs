//! The agent graph and per-invocation roll-ups, which need more than one span: a child span
//! is paired with its nearest ancestor agent span, the way Tempo's service-graph processor
//! pairs a client span with its server span.
//!
//! Every span of a trace is kept as a small node (its parent, and its agent name when it is
//! an agent span) while the trace is active. An edge is emitted as soon as the chain from a
//! span up to an agent (or to the trace root) is complete, and an LLM or tool call is added to
//! its agent's roll-up at the same moment; children usually arrive before the agent span that
//! encloses them, so both wait for it. A trace is flushed once no span of it arrived for the
//! pairing window: edges still waiting are counted as unpaired, and each agent invocation's
//! roll-up (LLM calls, tool calls, tokens) is emitted. A span id seen again in its trace (a
//! resend) counts in the graph once.
//!
//! Bounded: at most `max_traces` traces and `max_spans_per_trace` spans each (the spans past it
//! still count in the single-span metrics, not in the graph); the oldest trace is flushed
//! early to make room.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::HashMap;

use agentrace_semconv::metric::{self, graph_node};
use agentrace_semconv::SpanClass;

use super::{exemplar_of, truncated};
use crate::metrics::{Exemplar, Label, Observation};
use crate::normalize::CanonicalSpan;
use smallvec::{smallvec, SmallVec};

type TraceId = [u8; 16];
type SpanId = [u8; 8];

/// Parent chains longer than this are treated as broken (and guard against cycles).
const MAX_CHAIN: usize = 256;

/// Most distinct names (services, agents, graph nodes) kept for sharing; past it, names are
/// still correct but each span gets its own copy until the next tick starts afresh.
const MAX_SHARED_NAMES: usize = 10_000;

pub const DEFAULT_WAIT_SECS: f64 = 10.0;
pub const DEFAULT_MAX_TRACES: usize = 50_000;
const DEFAULT_MAX_AGE_SECS: f64 = 600.0;
const DEFAULT_MAX_SPANS_PER_TRACE: usize = 10_000;

#[derive(Clone, Copy, Debug)]
pub struct GraphConfig {
    /// Seconds a trace stays open after its last span arrived.
    pub wait_secs: f64,
    /// Seconds after which a trace is flushed even while spans keep arriving.
    pub max_age_secs: f64,
    pub max_traces: usize,
    pub max_spans_per_trace: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            wait_secs: DEFAULT_WAIT_SECS,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_traces: DEFAULT_MAX_TRACES,
            max_spans_per_trace: DEFAULT_MAX_SPANS_PER_TRACE,
        }
    }
}

#[derive(Debug)]
struct Node {
    parent: Option<SpanId>,
    /// Set for agent spans: the agent's name.
    agent: Option<Arc<str>>,
}

/// An edge whose caller is not known yet.
#[derive(Debug)]
struct PendingEdge {
    parent: Option<SpanId>,
    /// The callee span's sampling weight.
    weight: f64,
    service: Arc<str>,
    server: Arc<str>,
    failed: bool,
    duration: f64,
    exemplar: Exemplar,
}

/// An LLM or tool call to count towards the invocation of its nearest agent.
#[derive(Debug)]
struct Member {
    parent: Option<SpanId>,
    llm_calls: u32,
    tool_calls: u32,
    tokens: u64,
}

#[derive(Debug)]
struct Invocation {
    weight: f64,
    service: Arc<str>,
    agent: Arc<str>,
    exemplar: Exemplar,
    llm_calls: u32,
    tool_calls: u32,
    tokens: u64,
}

/// Below this many spans a trace's nodes are a vector searched in order: most traces are this
/// small, and one allocation in arrival order costs far less than a map per trace.
const FEW_NODES: usize = 32;

/// A trace's spans by id.
#[derive(Debug)]
enum Nodes {
    Few(Vec<(SpanId, Node)>),
    Many(HashMap<SpanId, Node>),
}

impl Nodes {
    fn len(&self) -> usize {
        match self {
            Self::Few(nodes) => nodes.len(),
            Self::Many(nodes) => nodes.len(),
        }
    }

    fn get(&self, span_id: &SpanId) -> Option<&Node> {
        match self {
            Self::Few(nodes) => nodes.iter().find(|(id, _)| id == span_id).map(|(_, node)| node),
            Self::Many(nodes) => nodes.get(span_id),
        }
    }

    /// Adds a span; false (and nothing changes) when the id is already there.
    fn insert(&mut self, span_id: SpanId, node: Node) -> bool {
        match self {
            Self::Few(nodes) if nodes.iter().any(|(id, _)| *id == span_id) => false,
            Self::Few(nodes) if nodes.len() < FEW_NODES => {
                nodes.push((span_id, node));
                true
            }
            Self::Few(nodes) => {
                let mut many: HashMap<SpanId, Node> = std::mem::take(nodes).into_iter().collect();
                many.insert(span_id, node);
                *self = Self::Many(many);
                true
            }
            Self::Many(nodes) => match nodes.entry(span_id) {
                Entry::Occupied(_) => false,
                Entry::Vacant(new) => {
                    new.insert(node);
                    true
                }
            },
        }
    }
}

#[derive(Debug)]
struct TraceState {
    first_seen: f64,
    last_seen: f64,
    nodes: Nodes,
    /// Edges whose caller has not arrived.
    pending: Vec<PendingEdge>,
    /// Calls whose agent has not arrived.
    members: Vec<Member>,
    /// Agent spans; usually one a trace, so held inline.
    invocations: SmallVec<[(SpanId, Invocation); 1]>,
}

impl TraceState {
    fn new(now: f64) -> Self {
        Self {
            first_seen: now,
            last_seen: now,
            nodes: Nodes::Few(Vec::new()),
            pending: Vec::new(),
            members: Vec::new(),
            invocations: SmallVec::new(),
        }
    }
}

enum Caller<'a> {
    Agent(SpanId, &'a Arc<str>),
    /// The chain reached the trace root without meeting an agent.
    Root,
    /// A span of the chain has not arrived (yet).
    Missing,
}

/// Walks up from `start` to the nearest agent span.
fn nearest_agent(nodes: &Nodes, start: Option<SpanId>) -> Caller<'_> {
    let mut current = start;
    for _ in 0..MAX_CHAIN {
        let Some(span_id) = current else {
            return Caller::Root;
        };
        let Some(node) = nodes.get(&span_id) else {
            return Caller::Missing;
        };
        if let Some(agent) = &node.agent {
            return Caller::Agent(span_id, agent);
        }
        current = node.parent;
    }
    Caller::Missing
}

#[derive(Debug, Default)]
pub struct AgentGraph {
    config: GraphConfig,
    traces: HashMap<TraceId, TraceState>,
    /// Traces in the order they opened, for evicting the oldest when full. May hold ids of
    /// traces already flushed; those are skipped.
    opened: VecDeque<TraceId>,
    /// Traces that got spans since the last `resolve_touched`.
    touched: Vec<TraceId>,
    /// Names seen, each allocated once and shared by the spans, edges and series that use it.
    names: hashbrown::HashSet<Arc<str>>,
    /// Scratch space for names built from parts (`tool:<name>`).
    scratch: String,
}

impl AgentGraph {
    pub fn new(config: GraphConfig) -> Self {
        Self { config, ..Self::default() }
    }

    pub fn open_traces(&self) -> usize {
        self.traces.len()
    }

    /// Records one span. Edges are emitted by [`Self::resolve_touched`], once per batch.
    pub fn insert(&mut self, span: &CanonicalSpan<'_>, now: f64, out: &mut Vec<Observation>) {
        if self.traces.len() >= self.config.max_traces && !self.traces.contains_key(&span.trace_id) {
            while self.traces.len() >= self.config.max_traces {
                let Some(oldest) = self.opened.pop_front() else { break };
                if let Some(trace) = self.traces.remove(&oldest) {
                    flush(trace, out);
                }
            }
        }
        let trace = match self.traces.entry(span.trace_id) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(new) => {
                self.opened.push_back(span.trace_id);
                new.insert(TraceState::new(now))
            }
        };
        trace.last_seen = now;
        if trace.nodes.len() >= self.config.max_spans_per_trace {
            return;
        }
        let agent = (span.class == SpanClass::Agent).then(|| shared(&mut self.names, agent_name(span)));
        if !trace.nodes.insert(span.span_id, Node { parent: span.parent_span_id, agent: agent.clone() }) {
            return;
        }
        let exemplar = exemplar_of(span, span.duration_seconds());
        if let Some(agent) = agent {
            trace.invocations.push((
                span.span_id,
                Invocation {
                    weight: span.weight,
                    service: shared(&mut self.names, truncated(span.service)),
                    agent,
                    exemplar,
                    llm_calls: 0,
                    tool_calls: 0,
                    tokens: 0,
                },
            ));
        }
        let is_llm = matches!(span.class, SpanClass::Llm | SpanClass::Embedding);
        let is_tool = span.class == SpanClass::Tool;
        if is_llm || is_tool {
            let tokens = span.fields.input_tokens.unwrap_or(0) + span.fields.output_tokens.unwrap_or(0);
            trace.members.push(Member {
                parent: span.parent_span_id,
                llm_calls: u32::from(is_llm),
                tool_calls: u32::from(is_tool),
                tokens,
            });
        }
        if let Some(server) = server_node(span, &mut self.scratch) {
            let server = shared(&mut self.names, truncated(server));
            trace.pending.push(PendingEdge {
                parent: span.parent_span_id,
                weight: span.weight,
                service: shared(&mut self.names, truncated(span.service)),
                server,
                failed: span.failed(),
                duration: span.duration_seconds(),
                exemplar,
            });
        }
        self.touched.push(span.trace_id);
    }

    /// Emits every edge whose caller is now known, in the traces that changed.
    pub fn resolve_touched(&mut self, out: &mut Vec<Observation>) {
        self.touched.sort_unstable();
        self.touched.dedup();
        for trace_id in self.touched.drain(..) {
            if let Some(trace) = self.traces.get_mut(&trace_id) {
                resolve_pending(trace, out);
            }
        }
    }

    /// Flushes traces idle for the pairing window or older than the maximum age.
    pub fn flush_idle(&mut self, now: f64, out: &mut Vec<Observation>) {
        // Full of names that may be gone: start sharing afresh (live state keeps its copies).
        if self.names.len() >= MAX_SHARED_NAMES {
            self.names.clear();
        }
        let config = self.config;
        let done = self.traces.extract_if(|_, trace| {
            now - trace.last_seen >= config.wait_secs || now - trace.first_seen >= config.max_age_secs
        });
        for (_, trace) in done {
            flush(trace, out);
        }
        if self.opened.len() > 2 * self.traces.len() + 1024 {
            let traces = &self.traces;
            self.opened.retain(|trace_id| traces.contains_key(trace_id));
        }
    }
}

/// `name` as a shared string: the one already held, else a new one (kept while there is room).
fn shared(names: &mut hashbrown::HashSet<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(known) = names.get(name) {
        return known.clone();
    }
    let fresh: Arc<str> = Arc::from(name);
    if names.len() < MAX_SHARED_NAMES {
        names.insert(fresh.clone());
    }
    fresh
}

fn agent_name<'a>(span: &CanonicalSpan<'a>) -> &'a str {
    truncated(span.fields.agent.unwrap_or(span.name))
}

/// The callee's node name in the graph, for the span classes that are edges (built in
/// `scratch` when it has a prefix).
fn server_node<'s>(span: &CanonicalSpan<'s>, scratch: &'s mut String) -> Option<&'s str> {
    let (prefix, name) = match span.class {
        SpanClass::Agent => return Some(agent_name(span)),
        SpanClass::Tool => (graph_node::TOOL_PREFIX, span.fields.tool),
        SpanClass::Llm | SpanClass::Embedding => (graph_node::MODEL_PREFIX, span.fields.model),
        SpanClass::Step | SpanClass::ModelLoad | SpanClass::Other => return None,
    };
    scratch.clear();
    scratch.push_str(prefix);
    scratch.push_str(name.unwrap_or_default());
    Some(scratch.as_str())
}

/// Emits the edges and adds the calls to their roll-ups whose chain up to an agent (or the
/// root) is complete; the rest keep waiting. What no longer waits gives its room back.
fn resolve_pending(trace: &mut TraceState, out: &mut Vec<Observation>) {
    let nodes = &trace.nodes;
    trace.pending.retain(|edge| {
        let client = match nearest_agent(nodes, edge.parent) {
            Caller::Agent(_, agent) => agent.clone(),
            Caller::Root => edge.service.clone(),
            Caller::Missing => return true,
        };
        emit_edge(client, edge, out);
        false
    });
    let invocations = &mut trace.invocations;
    trace.members.retain(|member| {
        let agent_span = match nearest_agent(nodes, member.parent) {
            Caller::Agent(agent_span, _) => agent_span,
            // No agent above it: it belongs to no invocation.
            Caller::Root => return false,
            Caller::Missing => return true,
        };
        if let Some((_, invocation)) = invocations.iter_mut().find(|(span_id, _)| *span_id == agent_span) {
            invocation.llm_calls += member.llm_calls;
            invocation.tool_calls += member.tool_calls;
            invocation.tokens += member.tokens;
        }
        false
    });
    if trace.pending.is_empty() {
        trace.pending = Vec::new();
    }
    if trace.members.is_empty() {
        trace.members = Vec::new();
    }
}

fn emit_edge(client: Arc<str>, edge: &PendingEdge, out: &mut Vec<Observation>) {
    let labels = smallvec![Label::Shared(client), Label::Shared(edge.server.clone()), Label::Borrowed("")];
    let observation = |metric, value| Observation {
        metric,
        labels: labels.clone(),
        value,
        weight: edge.weight,
        exemplar: Some(edge.exemplar),
    };
    if edge.failed {
        out.push(observation(metric::SERVICE_GRAPH_REQUEST_FAILED_TOTAL, 1.0));
    }
    out.push(observation(metric::SERVICE_GRAPH_REQUEST_SERVER_SECONDS, edge.duration));
    out.push(observation(metric::SERVICE_GRAPH_REQUEST_TOTAL, 1.0));
}

/// Final accounting of a trace: roll-ups per invocation, unpaired edges counted.
fn flush(mut trace: TraceState, out: &mut Vec<Observation>) {
    resolve_pending(&mut trace, out);
    if !trace.pending.is_empty() {
        out.push(Observation::new(
            metric::SELF_GRAPH_UNPAIRED_TOTAL,
            smallvec![],
            trace.pending.len() as f64,
            None,
        ));
    }
    for (_, invocation) in &trace.invocations {
        let labels =
            smallvec![Label::Shared(invocation.service.clone()), Label::Shared(invocation.agent.clone())];
        for (metric, value) in [
            (metric::AGENT_INVOCATION_LLM_CALLS, f64::from(invocation.llm_calls)),
            (metric::AGENT_INVOCATION_TOOL_CALLS, f64::from(invocation.tool_calls)),
            (metric::AGENT_INVOCATION_TOKENS, invocation.tokens as f64),
        ] {
            let exemplar = Exemplar { value, ..invocation.exemplar };
            out.push(Observation {
                metric,
                labels: labels.clone(),
                value,
                weight: invocation.weight,
                exemplar: Some(exemplar),
            });
        }
    }
}
