//! Closing a trace: what still waits is counted as unresolved or unpaired, and each
//! invocation's roll-up is emitted.

use agentrace_semconv::metric;
use smallvec::smallvec;

use super::chain::{nearest_agent, Caller};
use super::waiting::{Held, Waiter};
use super::{roll_up, Conversations, GraphConfig, TraceId, TraceState};
use crate::derive::conversations::Turn;
use crate::metrics::{Label, Observation, Observe};

/// Counts held series with `agent=""`, as unresolved for `reason`.
pub(super) fn count_unattributed<'o>(released: Vec<Held>, reason: &'static str, out: &mut impl Observe<'o>) {
    if released.is_empty() {
        return;
    }
    out.push(unresolved_count(reason, released.len()));
    for held in released {
        held.series.emit(Label::Borrowed(""), out);
    }
}

pub(super) fn unresolved_count<'o>(reason: &'static str, spans: usize) -> Observation<'o> {
    Observation::new(
        metric::SELF_ATTRIBUTION_UNRESOLVED_TOTAL,
        smallvec![Label::Borrowed(reason)],
        spans as f64,
        None,
    )
}

/// Final accounting of a trace: what still waits for an agent counted with `agent=""` as
/// unresolved (for `reason`), unpaired edges counted, roll-ups per invocation.
pub(super) fn flush<'o>(
    (trace_id, mut trace): (TraceId, Box<TraceState>),
    reason: &'static str,
    (config, conversations, now): (&GraphConfig, &Conversations, f64),
    out: &mut impl Observe<'o>,
) {
    let (mut unpaired, mut held) = (0usize, Vec::new());
    let mut waiters: Vec<Waiter> = trace.waiting.drain().collect();
    // A server span still deferred never learnt what is above it: counted as the only record.
    while let Some(waiter) = waiters.pop() {
        match waiter {
            Waiter::Edge(_) => unpaired += 1,
            Waiter::Held(series) => held.push(*series),
            Waiter::Member(_) => {}
            Waiter::Deferred(deferred) => waiters.extend(deferred.waiters),
        }
    }
    count_unattributed(held, reason, out);
    if unpaired > 0 {
        out.push(Observation::new(metric::SELF_GRAPH_UNPAIRED_TOTAL, smallvec![], unpaired as f64, None));
    }
    for (_, invocation) in &trace.invocations {
        roll_up(
            &invocation.service,
            &invocation.agent,
            &invocation.calls,
            (invocation.weight, invocation.exemplar),
            config.spec_names,
            out,
        );
    }
    super::loops::detect(&trace.nodes, &trace.invocations, config, out);
    if let Some(conversation) = &trace.totals.conversation {
        // The entry agent: an invocation with no agent above it.
        let entry = trace.invocations.iter().find(|(span_id, _)| {
            let parent = trace.nodes.get(span_id).and_then(|node| node.parent);
            matches!(nearest_agent(&trace.nodes, parent), Caller::Root)
        });
        let turn = Turn {
            totals: &trace.totals,
            trace_id,
            entry: entry.map(|(_, invocation)| (&invocation.agent, &invocation.service)),
        };
        conversations.add_trace(conversation, &turn, now, out);
    }
}
