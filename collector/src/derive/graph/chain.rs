//! A trace's spans as parent links, and the walk from a span up to its nearest agent.

use std::sync::Arc;

use super::SpanId;
use crate::small_map::SmallMap;

/// Parent chains longer than this are broken (and cycles stop).
const MAX_CHAIN: usize = 256;

/// An agent span's node: the agent and the service it runs in.
#[derive(Debug)]
pub(super) struct AgentNode {
    pub name: Arc<str>,
    pub service: Arc<str>,
}

#[derive(Debug)]
pub(super) struct Node {
    pub parent: Option<SpanId>,
    pub agent: Option<AgentNode>,
}

/// A trace's spans by id.
pub(super) type Nodes = SmallMap<SpanId, Node>;

pub(super) enum Caller<'a> {
    Agent(SpanId, &'a AgentNode),
    /// The chain reached the trace root without meeting an agent.
    Root,
    /// This span of the chain has not arrived (yet).
    Missing(SpanId),
    /// The chain does not end (too long, or a cycle).
    Broken,
}

/// Walks up from `start` to the nearest agent span.
pub(super) fn nearest_agent(nodes: &Nodes, start: Option<SpanId>) -> Caller<'_> {
    let mut current = start;
    for _ in 0..MAX_CHAIN {
        let Some(span_id) = current else {
            return Caller::Root;
        };
        let Some(node) = nodes.get(&span_id) else {
            return Caller::Missing(span_id);
        };
        if let Some(agent) = &node.agent {
            return Caller::Agent(span_id, agent);
        }
        current = node.parent;
    }
    Caller::Broken
}
