//! What waits in a trace for a span that has not arrived, filed under that span's id: an edge
//! for its caller, an LLM or tool call for its invocation, agent-scoped series for their agent.
//! A span that arrives takes out only what waits for it, so nothing is rescanned as a trace
//! grows; what waits for a span that never comes waits until the trace closes.

use std::mem::size_of;

use foldhash::HashMap;
use smallvec::SmallVec;

use super::chain::Duplicate;
use super::{RollUp, Scoped, SpanId};
use crate::metrics::Exemplar;
use std::sync::Arc;

/// An edge whose caller is not known yet.
#[derive(Debug)]
pub(super) struct PendingEdge {
    pub parent: Option<SpanId>,
    /// The callee span's sampling weight.
    pub weight: f64,
    pub service: Arc<str>,
    pub server: Arc<str>,
    /// The service running the callee: the span's own, or a remote agent's address.
    pub server_service: Arc<str>,
    /// Drawn by an agent span: an A2A call above it may have drawn it already.
    pub agent_edge: bool,
    pub failed: bool,
    pub duration: f64,
    pub exemplar: Exemplar,
}

/// An LLM or tool call to count towards the invocation of its nearest agent.
#[derive(Debug)]
pub(super) struct Member {
    pub parent: Option<SpanId>,
    pub calls: RollUp,
    pub probe: super::loops::Probe,
}

/// A span's agent-scoped series, waiting for its agent.
#[derive(Debug)]
pub(super) struct Held {
    pub parent: Option<SpanId>,
    /// When it started waiting (Unix seconds).
    pub since: f64,
    pub series: Scoped<'static>,
}

/// What a span would count, waiting to learn whether a span above it already counts the same
/// call (`dedup.rs`).
#[derive(Debug)]
pub(super) struct Deferred {
    pub kind: Duplicate,
    pub parent: Option<SpanId>,
    pub waiters: SmallVec<[Waiter; 3]>,
}

/// What waits. Held series are the largest by far and boxed, so that the index's table and
/// inline lists stay small.
#[derive(Debug)]
pub(super) enum Waiter {
    Edge(PendingEdge),
    Member(Member),
    Held(Box<Held>),
    Deferred(Box<Deferred>),
}

type Waiters = SmallVec<[Waiter; 1]>;

/// The heap a list of waiters takes once it no longer fits inline.
fn spilled_bytes(waiters: &Waiters) -> usize {
    if waiters.spilled() {
        waiters.capacity() * size_of::<Waiter>()
    } else {
        0
    }
}

impl Waiter {
    pub fn parent(&self) -> Option<SpanId> {
        match self {
            Self::Edge(edge) => edge.parent,
            Self::Member(member) => member.parent,
            Self::Held(held) => held.parent,
            Self::Deferred(deferred) => deferred.parent,
        }
    }

    /// Held series in this waiter.
    fn held(&self) -> usize {
        match self {
            Self::Held(_) => 1,
            Self::Deferred(deferred) => deferred.waiters.iter().map(Self::held).sum(),
            Self::Edge(_) | Self::Member(_) => 0,
        }
    }

    fn deferred(&self) -> usize {
        usize::from(matches!(self, Self::Deferred(_)))
    }
}

#[derive(Debug, Default)]
pub(super) struct Waiting {
    by_missing: HashMap<SpanId, Waiters>,
    /// Waiters whose chain never ends (too long, or a cycle): they wait for the trace to close.
    stuck: Vec<Waiter>,
    /// The heap taken by lists of more than one waiter.
    spilled: usize,
    /// Held series among the waiters: the pending-spans gauge and the boxes' bytes.
    pub held: usize,
    /// Deferred server spans among the waiters, for their boxes' bytes.
    deferred: usize,
}

impl Waiting {
    /// What the index takes: its table, the lists that spilled to the heap, the stuck ones, the
    /// boxed series.
    pub fn bytes(&self) -> usize {
        let entry = size_of::<(SpanId, Waiters)>() + 1;
        self.by_missing.capacity() * entry * 8 / 7
            + self.spilled
            + self.stuck.capacity() * size_of::<Waiter>()
            + self.held * size_of::<Held>()
            + self.deferred * size_of::<Deferred>()
    }

    /// Files `waiter` under the span it waits for; `None`: under no span.
    pub fn park(&mut self, missing: Option<SpanId>, waiter: Waiter) {
        self.held += waiter.held();
        self.deferred += waiter.deferred();
        let Some(span_id) = missing else {
            return self.stuck.push(waiter);
        };
        let waiters = self.by_missing.entry(span_id).or_default();
        let before = spilled_bytes(waiters);
        waiters.push(waiter);
        self.spilled += spilled_bytes(waiters) - before;
    }

    /// Takes out what waited for `arrived`.
    pub fn take(&mut self, arrived: &SpanId) -> Waiters {
        let taken = self.by_missing.remove(arrived).unwrap_or_default();
        if self.by_missing.is_empty() {
            // Usually everything waited for the agent span, which came last: give the table back.
            self.by_missing = HashMap::default();
        }
        self.spilled -= spilled_bytes(&taken);
        self.held -= taken.iter().map(Waiter::held).sum::<usize>();
        self.deferred -= taken.iter().map(Waiter::deferred).sum::<usize>();
        taken
    }

    /// Takes out everything, at the trace's close.
    pub fn drain(&mut self) -> impl Iterator<Item = Waiter> {
        (self.held, self.spilled, self.deferred) = (0, 0, 0);
        let indexed = std::mem::take(&mut self.by_missing).into_values().flatten();
        indexed.chain(std::mem::take(&mut self.stuck))
    }

    /// Takes out the held series that `expired` picks (a deferred server span waits for its
    /// trace to close).
    pub fn release_held(&mut self, expired: impl Fn(&Held) -> bool) -> Vec<Held> {
        let mut released = Vec::new();
        let mut keep = |waiter: Waiter| match waiter {
            Waiter::Held(held) if expired(&held) => {
                released.push(*held);
                None
            }
            other => Some(other),
        };
        for waiters in self.by_missing.values_mut() {
            *waiters = std::mem::take(waiters).into_iter().filter_map(&mut keep).collect();
        }
        self.by_missing.retain(|_, waiters| !waiters.is_empty());
        self.spilled = self.by_missing.values().map(spilled_bytes).sum();
        self.stuck = std::mem::take(&mut self.stuck).into_iter().filter_map(&mut keep).collect();
        self.held -= released.len();
        released
    }
}
