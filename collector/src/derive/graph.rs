//! The agent graph, the per-invocation roll-ups and attribution: what needs more than one span.
//! A child span pairs with its nearest ancestor agent span, as Tempo's service graph pairs
//! client and server spans.
//!
//! Each span of an active trace is a small node (its parent; for an agent span, the agent and
//! its service). As soon as the chain from a span up to an agent (or to the root) is complete,
//! its edge is emitted, an LLM or tool call joins its agent's roll-up, and a call, tool call or
//! step that does not name its agent is counted for that agent; until then they wait (a
//! waiting span's series own their labels). Children usually arrive before their agent span.
//!
//! A trace is flushed once no span of it arrived for the pairing window: waiting edges count as
//! unpaired, waiting spans with `agent=""` and as unresolved, and each invocation's roll-up is
//! emitted. A waiting span gives up after the attribution wait, which may be shorter. A span id
//! seen again in its trace (a resend) counts in the graph once.
//!
//! Bounded: `max_traces` traces, `max_spans_per_trace` spans each (a span past it is attributed
//! from the spans that got in) and `max_pending_spans` waiting spans in all; the oldest trace is
//! flushed early to make room, its waiting spans counted as unresolved.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::HashMap;

use agentrace_semconv::metric::{self, graph_node, unresolved};
use agentrace_semconv::SpanClass;

use super::{exemplar_of, roll_up, EdgeLabels, GraphConfig, RollUp, Scoped};
use crate::metrics::{truncated, Exemplar, Label, Observation, SharedNames};
use crate::normalize::CanonicalSpan;
use crate::small_map::SmallMap;
use smallvec::{smallvec, SmallVec};

type TraceId = [u8; 16];
type SpanId = [u8; 8];

/// Parent chains longer than this are broken (and cycles stop).
const MAX_CHAIN: usize = 256;

/// An agent span's node: the agent and the service it runs in.
#[derive(Debug)]
struct AgentNode {
    name: Arc<str>,
    service: Arc<str>,
}

#[derive(Debug)]
struct Node {
    parent: Option<SpanId>,
    agent: Option<AgentNode>,
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
    calls: RollUp,
}

/// A span's agent-scoped series, waiting for its agent.
#[derive(Debug)]
struct Held {
    parent: Option<SpanId>,
    /// When it started waiting (Unix seconds).
    since: f64,
    series: Scoped<'static>,
}

#[derive(Debug)]
struct Invocation {
    weight: f64,
    service: Arc<str>,
    agent: Arc<str>,
    exemplar: Exemplar,
    calls: RollUp,
}

/// A trace's spans by id.
type Nodes = SmallMap<SpanId, Node>;

#[derive(Debug, Default)]
struct TraceState {
    first_seen: f64,
    last_seen: f64,
    nodes: Nodes,
    /// Edges whose caller has not arrived.
    pending: Vec<PendingEdge>,
    /// Calls whose agent has not arrived.
    members: Vec<Member>,
    /// Spans whose agent-scoped series wait for their agent.
    held: Vec<Held>,
    /// Agent spans; usually one a trace, so held inline.
    invocations: SmallVec<[(SpanId, Invocation); 1]>,
}

impl TraceState {
    fn new(now: f64) -> Self {
        Self { first_seen: now, last_seen: now, ..Self::default() }
    }
}

enum Caller<'a> {
    Agent(SpanId, &'a AgentNode),
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
    /// Spans held for their agent, in all traces.
    held: usize,
    /// Names seen, each allocated once and shared by the spans, edges and series that use it.
    names: SharedNames,
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

    /// Records one span, and counts or holds its agent-scoped series (`scoped`). Edges and
    /// held series whose agent arrives are emitted by [`Self::resolve_touched`], once per batch.
    pub fn insert<'a>(
        &mut self,
        span: &CanonicalSpan<'a>,
        scoped: Option<Scoped<'a>>,
        now: f64,
        out: &mut Vec<Observation<'a>>,
    ) {
        self.make_room(span.trace_id, scoped.as_ref().is_some_and(|scoped| scoped.agent.is_none()), out);
        let trace = match self.traces.entry(span.trace_id) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(new) => {
                self.opened.push_back(span.trace_id);
                new.insert(TraceState::new(now))
            }
        };
        trace.last_seen = now;
        self.touched.push(span.trace_id);
        let in_graph = trace.nodes.len() < self.config.max_spans_per_trace;
        if in_graph {
            add_to_graph(trace, span, &mut self.names, &mut self.scratch);
        }
        let Some(scoped) = scoped else { return };
        if let Some(agent) = &scoped.agent {
            scoped.emit(agent.clone(), out);
            return;
        }
        match nearest_agent(&trace.nodes, span.parent_span_id) {
            Caller::Agent(_, agent) => scoped.emit(Label::Shared(agent.name.clone()), out),
            Caller::Root => scoped.emit(Label::Borrowed(""), out),
            Caller::Missing if !in_graph => {
                scoped.emit(Label::Borrowed(""), out);
                out.push(unresolved_count(unresolved::SPAN_CAP, 1));
            }
            Caller::Missing => {
                let names = &mut self.names;
                let series = scoped.to_owned(&mut |name| names.get(name));
                trace.held.push(Held { parent: span.parent_span_id, since: now, series });
                self.held += 1;
            }
        }
    }

    /// Flushes the oldest traces while the window is full: for a new trace when it holds
    /// `max_traces`, and for a span about to be held when `max_pending_spans` are.
    fn make_room(&mut self, trace_id: TraceId, may_hold: bool, out: &mut Vec<Observation>) {
        loop {
            let traces_full =
                self.traces.len() >= self.config.max_traces && !self.traces.contains_key(&trace_id);
            let held_full = may_hold && self.held >= self.config.max_pending_spans;
            if !traces_full && !held_full {
                return;
            }
            let Some(oldest) = self.opened.pop_front() else { return };
            if let Some(trace) = self.traces.remove(&oldest) {
                self.held -= trace.held.len();
                flush(trace, unresolved::EVICTED, out);
            }
        }
    }

    /// Emits every edge and held series whose agent is now known, in the traces that changed.
    pub fn resolve_touched(&mut self, out: &mut Vec<Observation>) {
        self.touched.sort_unstable();
        self.touched.dedup();
        for trace_id in self.touched.drain(..) {
            if let Some(trace) = self.traces.get_mut(&trace_id) {
                self.held -= resolve_pending(trace, out);
            }
        }
    }

    /// Flushes traces idle for the pairing window or older than the maximum age, counts held
    /// spans past the attribution wait as unresolved, and reports how many still wait.
    pub fn flush_idle(&mut self, now: f64, out: &mut Vec<Observation>) {
        self.names.clear_if_full();
        let config = self.config;
        let done = self.traces.extract_if(|_, trace| {
            now - trace.last_seen >= config.wait_secs || now - trace.first_seen >= config.max_age_secs
        });
        for (_, trace) in done {
            self.held -= trace.held.len();
            flush(trace, unresolved::WAIT_EXPIRED, out);
        }
        if self.held > 0 {
            let oldest_kept = now - config.attribution_wait_secs;
            for trace in self.traces.values_mut() {
                self.held -=
                    release_held(trace, |held| held.since <= oldest_kept, unresolved::WAIT_EXPIRED, out);
            }
        }
        out.push(Observation::new(
            metric::SELF_ATTRIBUTION_PENDING_SPANS,
            smallvec![],
            self.held as f64,
            None,
        ));
        if self.opened.len() > 2 * self.traces.len() + 1024 {
            let traces = &self.traces;
            self.opened.retain(|trace_id| traces.contains_key(trace_id));
        }
    }
}

/// Adds a span to its trace's graph: its node, and for an agent its invocation, for a call its
/// roll-up membership, for an edge's callee the edge, waiting for their callers.
fn add_to_graph(
    trace: &mut TraceState,
    span: &CanonicalSpan<'_>,
    names: &mut SharedNames,
    scratch: &mut String,
) {
    let service = names.get(truncated(span.service));
    let agent = (span.class == SpanClass::Agent)
        .then(|| AgentNode { name: names.get(agent_name(span)), service: service.clone() });
    let agent_name = agent.as_ref().map(|agent| agent.name.clone());
    if !trace.nodes.insert(span.span_id, Node { parent: span.parent_span_id, agent }) {
        return;
    }
    let exemplar = exemplar_of(span, span.duration_seconds());
    if let Some(agent) = agent_name {
        let invocation = Invocation {
            weight: span.weight,
            service: service.clone(),
            agent,
            exemplar,
            calls: RollUp::default(),
        };
        trace.invocations.push((span.span_id, invocation));
    }
    let is_llm = matches!(span.class, SpanClass::Llm | SpanClass::Embedding);
    let is_tool = span.class == SpanClass::Tool;
    if is_llm || is_tool {
        let tokens =
            span.fields.input_tokens.unwrap_or(0).saturating_add(span.fields.output_tokens.unwrap_or(0));
        let calls = RollUp { llm_calls: u32::from(is_llm), tool_calls: u32::from(is_tool), tokens };
        trace.members.push(Member { parent: span.parent_span_id, calls });
    }
    if let Some(server) = server_node(span, scratch) {
        trace.pending.push(PendingEdge {
            parent: span.parent_span_id,
            weight: span.weight,
            server: names.get(truncated(server)),
            service,
            failed: span.failed(),
            duration: span.duration_seconds(),
            exemplar,
        });
    }
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

/// Emits the edges, adds the calls to their roll-ups and counts the held series whose chain up
/// to an agent (or the root) is complete; the rest keep waiting. What no longer waits gives its
/// room back. Returns how many held spans were counted.
fn resolve_pending(trace: &mut TraceState, out: &mut Vec<Observation>) -> usize {
    let nodes = &trace.nodes;
    trace.pending.retain(|edge| {
        let (client, client_service) = match nearest_agent(nodes, edge.parent) {
            Caller::Agent(_, agent) => (agent.name.clone(), agent.service.clone()),
            Caller::Root => (edge.service.clone(), edge.service.clone()),
            Caller::Missing => return true,
        };
        let labels = EdgeLabels {
            client,
            server: edge.server.clone(),
            client_service,
            server_service: edge.service.clone(),
        };
        super::edge(labels, edge.failed, edge.duration, edge.weight, edge.exemplar, out);
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
            invocation.calls.add(member.calls);
        }
        false
    });
    let before = trace.held.len();
    trace.held.retain(|held| {
        let agent = match nearest_agent(nodes, held.parent) {
            Caller::Agent(_, agent) => Label::Shared(agent.name.clone()),
            Caller::Root => Label::Borrowed(""),
            Caller::Missing => return true,
        };
        held.series.emit(agent, out);
        false
    });
    shrink_if_empty(&mut trace.pending);
    shrink_if_empty(&mut trace.members);
    shrink_if_empty(&mut trace.held);
    before - trace.held.len()
}

/// Gives a list's room back once it is empty.
fn shrink_if_empty<T>(list: &mut Vec<T>) {
    if list.is_empty() {
        *list = Vec::new();
    }
}

/// Counts the held spans that `expired` picks with `agent=""`, as unresolved for `reason`;
/// returns how many.
fn release_held(
    trace: &mut TraceState,
    expired: impl Fn(&Held) -> bool,
    reason: &'static str,
    out: &mut Vec<Observation>,
) -> usize {
    let before = trace.held.len();
    trace.held.retain(|held| {
        if !expired(held) {
            return true;
        }
        held.series.emit(Label::Borrowed(""), out);
        false
    });
    let released = before - trace.held.len();
    if released > 0 {
        out.push(unresolved_count(reason, released));
    }
    released
}

fn unresolved_count<'o>(reason: &'static str, spans: usize) -> Observation<'o> {
    Observation::new(
        metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL,
        smallvec![Label::Borrowed(reason)],
        spans as f64,
        None,
    )
}

/// Final accounting of a trace: what still waits for an agent counted with `agent=""` as
/// unresolved (for `reason`), unpaired edges counted, roll-ups per invocation.
fn flush(mut trace: TraceState, reason: &'static str, out: &mut Vec<Observation>) {
    resolve_pending(&mut trace, out);
    release_held(&mut trace, |_| true, reason, out);
    if !trace.pending.is_empty() {
        out.push(Observation::new(
            metric::SELF_GRAPH_UNPAIRED_TOTAL,
            smallvec![],
            trace.pending.len() as f64,
            None,
        ));
    }
    for (_, invocation) in &trace.invocations {
        roll_up(
            &invocation.service,
            &invocation.agent,
            &invocation.calls,
            invocation.weight,
            invocation.exemplar,
            out,
        );
    }
}
