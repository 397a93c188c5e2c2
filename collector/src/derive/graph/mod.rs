//! The agent graph, the per-invocation roll-ups and attribution: what needs more than one span.
//! A child span pairs with its nearest ancestor agent span, as Tempo's service graph pairs
//! client and server spans.
//!
//! Each span of an active trace is a small node (its parent; for an agent span, the agent and
//! its service). As soon as the chain from a span up to an agent (or to the root) is complete,
//! its edge is emitted, an LLM or tool call joins its agent's roll-up, and a call, tool call or
//! step that does not name its agent is counted for that agent; until then they wait, filed
//! under the span their chain is missing (`waiting.rs`), and a span that arrives settles only
//! what waits for it. Children usually arrive before their agent span.
//!
//! A trace is flushed once no span of it arrived for the pairing window: waiting edges count as
//! unpaired, waiting spans with `agent=""` and as unresolved, and each invocation's roll-up is
//! emitted. A waiting span gives up after the attribution wait, which may be shorter. A span id
//! seen again in its trace (a resend) counts in the graph once.
//!
//! Bounded: `max_bytes` in all (sized from `--memory-limit`), `max_traces` traces,
//! `max_spans_per_trace` spans each (a span past it is attributed from the spans that got in)
//! and `max_pending_spans` waiting spans in all; the oldest trace is flushed early to make
//! room, its waiting spans counted as unresolved.

mod chain;
mod close;
mod dedup;
mod edges;
mod loops;
mod waiting;

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::Arc;

use foldhash::HashMap;

use agentrace_semconv::metric::{self, unresolved};
use agentrace_semconv::SpanClass;

use super::conversations::{Conversations, TraceTotals};
use super::{exemplar_of, roll_up, EdgeLabels, GraphConfig, RollUp, Scoped};
use crate::metrics::{truncated, Exemplar, Label, Observation, Observe, SharedNames};
use crate::normalize::CanonicalSpan;
use chain::{nearest_agent, AgentNode, Caller, Node, Nodes};
use close::{count_unattributed, flush, unresolved_count};
use edges::{agent_name, edge_targets};
use smallvec::{smallvec, SmallVec};
use waiting::{Deferred, Held, Member, PendingEdge, Waiter, Waiting};

type TraceId = [u8; 16];
type SpanId = [u8; 8];

#[derive(Debug)]
struct Invocation {
    weight: f64,
    service: Arc<str>,
    agent: Arc<str>,
    exemplar: Exemplar,
    calls: RollUp,
    watch: loops::Watch,
}

#[derive(Debug, Default)]
struct TraceState {
    first_seen: f64,
    last_seen: f64,
    nodes: Nodes,
    /// Edges, calls and series whose chain misses a span.
    waiting: Waiting,
    /// Agent spans; usually one a trace, so held inline.
    invocations: SmallVec<[(SpanId, Invocation); 1]>,
    /// Whether an A2A call is in the trace: a remote agent's edge may be drawn already.
    has_a2a: bool,
    /// What the trace adds to its conversation, if it has one.
    totals: TraceTotals,
}

/// A trace's state with its entries in the window's table and queue (names are shared, and
/// bounded apart).
const TRACE_BYTES: usize = (size_of::<Box<TraceState>>() + size_of::<TraceId>() + 1) * 8 / 7
    + size_of::<TraceId>()
    + size_of::<TraceState>();

impl TraceState {
    fn new(now: f64) -> Self {
        Self { first_seen: now, last_seen: now, ..Self::default() }
    }

    /// What the window's byte budget counts for the trace: its state, the allocations of its
    /// nodes, invocations and waiters, from their capacities.
    fn bytes(&self) -> usize {
        let invocations = match self.invocations.spilled() {
            true => self.invocations.capacity() * size_of::<(SpanId, Invocation)>(),
            false => 0,
        };
        TRACE_BYTES + self.nodes.heap_bytes() + invocations + self.waiting.bytes()
    }
}

#[derive(Debug, Default)]
pub struct AgentGraph {
    config: GraphConfig,
    /// Each state boxed: the table then moves small entries when it grows (and the states
    /// stay where they are).
    traces: HashMap<TraceId, Box<TraceState>>,
    /// Traces in the order they opened, for evicting the oldest when full. May hold ids of
    /// traces already flushed; those are skipped.
    opened: VecDeque<TraceId>,
    /// Spans held for their agent, in all traces.
    held: usize,
    /// What the open traces hold, as [`TraceState::bytes`] counts it.
    bytes: usize,
    /// Names seen, each allocated once and shared by the spans, edges and series that use it.
    names: SharedNames,
    /// Scratch space for names built from parts (`tool:<name>`).
    scratch: String,
    /// Where a closing trace of a conversation adds its turn.
    conversations: Arc<Conversations>,
}

impl AgentGraph {
    pub fn new(config: GraphConfig, conversations: Arc<Conversations>) -> Self {
        Self { config, conversations, ..Self::default() }
    }

    pub fn spec_names(&self) -> bool {
        self.config.spec_names
    }

    pub fn share_conversations(&mut self, conversations: Arc<Conversations>) {
        self.conversations = conversations;
    }

    pub fn open_traces(&self) -> usize {
        self.traces.len()
    }

    /// Records one span, and counts or holds its agent-scoped series (`scoped`); settles what
    /// waited for it.
    pub fn insert<'a>(
        &mut self,
        span: &CanonicalSpan<'a>,
        scoped: Option<Scoped<'a>>,
        now: f64,
        out: &mut impl Observe<'a>,
    ) {
        self.make_room(span.trace_id, scoped.as_ref().is_some_and(|scoped| scoped.agent.is_none()), now, out);
        let (trace, bytes_before) = match self.traces.entry(span.trace_id) {
            Entry::Occupied(open) => {
                let trace = &mut **open.into_mut();
                let bytes = trace.bytes();
                (trace, bytes)
            }
            Entry::Vacant(new) => {
                self.opened.push_back(span.trace_id);
                (&mut **new.insert(Box::new(TraceState::new(now))), 0)
            }
        };
        let held_before = trace.waiting.held;
        trace.last_seen = now;
        let in_graph = trace.nodes.len() < self.config.max_spans_per_trace;
        let mut deferred = dedup::may_duplicate(span).filter(|_| in_graph).map(|kind| {
            Box::new(Deferred { kind, parent: dedup::call_start(span), waiters: SmallVec::new() })
        });
        let names = &mut self.names;
        let cost = scoped.as_ref().map_or(0.0, Scoped::cost);
        totals_add(&mut trace.totals, span, names);
        let scratch = &mut self.scratch;
        if in_graph && add_to_graph(trace, span, (names, scratch), (cost, deferred.as_deref_mut()), out) {
            for waiter in trace.waiting.take(&span.span_id) {
                settle(trace, waiter, out);
            }
        }
        match (scoped, &mut deferred) {
            (Some(scoped), Some(deferred)) => {
                let series = scoped.to_owned(&mut |name| names.get(name));
                let held = Held { parent: span.parent_span_id, since: now, series };
                deferred.waiters.push(Waiter::Held(Box::new(held)));
            }
            (Some(scoped), None) => hold_or_count(trace, span, scoped, in_graph, now, names, out),
            (None, _) => {}
        }
        if let Some(deferred) = deferred {
            dedup::settle_deferred(trace, deferred, out);
        }
        self.bytes = self.bytes + trace.bytes() - bytes_before;
        self.held = self.held + trace.waiting.held - held_before;
        self.shrink_to_budget(span.trace_id, now, out);
    }

    /// Closes the oldest traces while the window is over its byte budget (a table that just
    /// grew can take it over), but not `current`: once it is the oldest, it is left to grow
    /// until the next span.
    fn shrink_to_budget<'o>(&mut self, current: TraceId, now: f64, out: &mut impl Observe<'o>) {
        while self.bytes > self.config.max_bytes {
            let Some(oldest) = self.opened.pop_front() else { return };
            if oldest == current {
                self.opened.push_front(oldest);
                return;
            }
            if let Some(trace) = self.traces.remove(&oldest) {
                self.forget(&trace);
                flush((oldest, trace), unresolved::EVICTED, (&self.config, &self.conversations, now), out);
            }
        }
    }

    /// Flushes the oldest traces while the window is full: at `max_bytes`, for a new trace when
    /// it holds `max_traces`, and for a span about to be held when `max_pending_spans` are.
    fn make_room<'o>(&mut self, trace_id: TraceId, may_hold: bool, now: f64, out: &mut impl Observe<'o>) {
        loop {
            let traces_full =
                self.traces.len() >= self.config.max_traces && !self.traces.contains_key(&trace_id);
            let held_full = may_hold && self.held >= self.config.max_pending_spans;
            let bytes_full = self.bytes >= self.config.max_bytes;
            if !traces_full && !held_full && !bytes_full {
                return;
            }
            let Some(oldest) = self.opened.pop_front() else { return };
            if let Some(trace) = self.traces.remove(&oldest) {
                self.forget(&trace);
                flush((oldest, trace), unresolved::EVICTED, (&self.config, &self.conversations, now), out);
            }
        }
    }

    /// Takes a closing trace out of the window's counts.
    fn forget(&mut self, trace: &TraceState) {
        self.held -= trace.waiting.held;
        self.bytes -= trace.bytes();
    }

    /// What the open traces hold, in bytes.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Flushes traces idle for the pairing window or older than the maximum age, counts held
    /// spans past the attribution wait as unresolved, and reports how many still wait.
    pub fn flush_idle<'o>(&mut self, now: f64, out: &mut impl Observe<'o>) {
        self.names.clear_if_full();
        let config = self.config;
        let done = self.traces.extract_if(|_, trace| {
            now - trace.last_seen >= config.wait_secs || now - trace.first_seen >= config.max_age_secs
        });
        let closed: Vec<(TraceId, Box<TraceState>)> = done.collect();
        for (trace_id, trace) in closed {
            self.forget(&trace);
            flush((trace_id, trace), unresolved::WAIT_EXPIRED, (&config, &self.conversations, now), out);
        }
        if self.held > 0 {
            let oldest_kept = now - config.attribution_wait_secs;
            for trace in self.traces.values_mut() {
                let (bytes_before, held_before) = (trace.bytes(), trace.waiting.held);
                let released = trace.waiting.release_held(|held| held.since <= oldest_kept);
                count_unattributed(released, unresolved::WAIT_EXPIRED, out);
                self.bytes = self.bytes + trace.bytes() - bytes_before;
                self.held = self.held + trace.waiting.held - held_before;
            }
        }
        out.push(Observation::new(
            metric::SELF_ATTRIBUTION_PENDING_SPANS,
            smallvec![],
            self.held as f64,
            None,
        ));
        out.push(Observation::new(metric::SELF_GRAPH_BYTES, smallvec![], self.bytes as f64, None));
        let max_bytes = config.max_bytes as f64;
        out.push(Observation::new(metric::SELF_GRAPH_MAX_BYTES, smallvec![], max_bytes, None));
        if self.opened.len() > 2 * self.traces.len() + 1024 {
            let traces = &self.traces;
            self.opened.retain(|trace_id| traces.contains_key(trace_id));
        }
    }
}

/// Adds a span to its trace's graph: its node, and for an agent its invocation, for a call its
/// roll-up membership, for an edge's callee the edge, each settled now or left waiting, or put
/// in `deferred`. False for a span already in the graph (a resend).
fn add_to_graph<'o>(
    trace: &mut TraceState,
    span: &CanonicalSpan<'_>,
    (names, scratch): (&mut SharedNames, &mut String),
    (cost, mut deferred): (f64, Option<&mut Deferred>),
    out: &mut impl Observe<'o>,
) -> bool {
    let service = names.get(truncated(span.service));
    let agent = (span.class == SpanClass::Agent)
        .then(|| AgentNode { name: names.get(agent_name(span)), service: service.clone() });
    let agent_name = agent.as_ref().map(|agent| agent.name.clone());
    let node = Node { parent: span.parent_span_id, agent, role: dedup::role(span) };
    if !trace.nodes.insert(span.span_id, node) {
        return false;
    }
    let exemplar = exemplar_of(span, span.duration_seconds());
    if let Some(agent) = agent_name {
        let invocation = Invocation {
            weight: span.weight,
            service: service.clone(),
            agent,
            exemplar,
            calls: RollUp::default(),
            watch: loops::Watch::default(),
        };
        trace.invocations.push((span.span_id, invocation));
    }
    let is_llm = matches!(span.class, SpanClass::Llm | SpanClass::Embedding);
    let is_tool = span.class == SpanClass::Tool;
    if is_llm || is_tool {
        let tokens =
            span.fields.input_tokens.unwrap_or(0).saturating_add(span.fields.output_tokens.unwrap_or(0));
        let calls = RollUp { llm_calls: u32::from(is_llm), tool_calls: u32::from(is_tool), tokens, cost };
        let probe = loops::Probe::of(span);
        let member = Waiter::Member(Member { parent: span.parent_span_id, calls, probe });
        settle_or_defer(trace, member, deferred.as_deref_mut(), out);
    }
    let role = dedup::role(span);
    trace.has_a2a |= role == chain::Role::A2aClient;
    for (server, server_service) in edge_targets(span, &service, names, scratch) {
        let edge = PendingEdge {
            parent: span.parent_span_id,
            weight: span.weight,
            server,
            server_service,
            agent_edge: span.class == SpanClass::Agent,
            service: service.clone(),
            failed: span.failed(),
            duration: span.duration_seconds(),
            exemplar,
        };
        settle_or_defer(trace, Waiter::Edge(edge), deferred.as_deref_mut(), out);
    }
    true
}

fn settle_or_defer<'o>(
    trace: &mut TraceState,
    waiter: Waiter,
    deferred: Option<&mut Deferred>,
    out: &mut impl Observe<'o>,
) {
    match deferred {
        Some(deferred) => deferred.waiters.push(waiter),
        None => settle(trace, waiter, out),
    }
}

/// Counts a span's agent-scoped series for the agent it names, or the nearest agent above it
/// in the trace; holds it while that is not known yet.
fn hold_or_count<'a>(
    trace: &mut TraceState,
    span: &CanonicalSpan<'a>,
    scoped: Scoped<'a>,
    in_graph: bool,
    now: f64,
    names: &mut SharedNames,
    out: &mut impl Observe<'a>,
) {
    if let Some(agent) = &scoped.agent {
        scoped.emit(agent.clone(), out);
        return;
    }
    let missing = match nearest_agent(&trace.nodes, span.parent_span_id) {
        Caller::Agent(_, agent) => return scoped.emit(Label::Shared(agent.name.clone()), out),
        Caller::Root => return scoped.emit(Label::Borrowed(""), out),
        Caller::Missing(_) | Caller::Broken if !in_graph => {
            scoped.emit(Label::Borrowed(""), out);
            return out.push(unresolved_count(unresolved::SPAN_CAP, 1));
        }
        Caller::Missing(span_id) => Some(span_id),
        Caller::Broken => None,
    };
    let series = scoped.to_owned(&mut |name| names.get(name));
    let held = Held { parent: span.parent_span_id, since: now, series };
    trace.waiting.park(missing, Waiter::Held(Box::new(held)));
}

/// The trace's times, last span, first service and conversation, as each span arrives.
fn totals_add(totals: &mut TraceTotals, span: &CanonicalSpan<'_>, names: &mut SharedNames) {
    if totals.service.is_none() {
        totals.service = Some(names.get(truncated(span.service)));
        totals.first_start_nanos = span.start_unix_nano;
    }
    if totals.conversation.is_none() {
        totals.conversation = span.fields.conversation.map(|id| Arc::from(truncated(id)));
    }
    totals.first_start_nanos = totals.first_start_nanos.min(span.start_unix_nano);
    if span.end_unix_nano >= totals.last_end_nanos {
        totals.last_end_nanos = span.end_unix_nano;
        totals.last_span_id = span.span_id;
    }
}

/// Settles a waiter whose chain up to an agent (or the root) is complete: emits the edge, adds
/// the call to its invocation, counts the series; otherwise files it under the missing span.
fn settle<'o>(trace: &mut TraceState, waiter: Waiter, out: &mut impl Observe<'o>) {
    let waiter = match waiter {
        Waiter::Deferred(deferred) => return dedup::settle_deferred(trace, deferred, out),
        waiter => waiter,
    };
    let caller = nearest_agent(&trace.nodes, waiter.parent());
    let (agent_span, agent) = match caller {
        Caller::Agent(agent_span, agent) => (Some(agent_span), Some(agent)),
        Caller::Root => (None, None),
        Caller::Missing(span_id) => return trace.waiting.park(Some(span_id), waiter),
        Caller::Broken => return trace.waiting.park(None, waiter),
    };
    match waiter {
        Waiter::Edge(edge) => {
            if edge.agent_edge && trace.has_a2a && chain::through_a2a(&trace.nodes, edge.parent) {
                // The A2A call above it drew this edge, whether or not this side arrived.
                return;
            }
            let (client, client_service) = match agent {
                Some(agent) => (agent.name.clone(), agent.service.clone()),
                None => (edge.service.clone(), edge.service.clone()),
            };
            let labels = EdgeLabels {
                client,
                server: edge.server,
                client_service,
                server_service: edge.server_service,
            };
            super::edge(labels, edge.failed, edge.duration, edge.weight, edge.exemplar, out);
        }
        // Without an agent above it, a call belongs to no invocation, but to its trace.
        Waiter::Member(member) => {
            trace.totals.calls.add(member.calls);
            let invocation = trace.invocations.iter_mut().find(|(span_id, _)| Some(*span_id) == agent_span);
            if let Some((_, invocation)) = invocation {
                invocation.calls.add(member.calls);
                invocation.watch.add(member.probe);
            }
        }
        Waiter::Held(held) => {
            let label = agent.map_or(Label::Borrowed(""), |agent| Label::Shared(agent.name.clone()));
            held.series.emit(label, out);
        }
        Waiter::Deferred(deferred) => dedup::settle_deferred(trace, deferred, out),
    }
}
