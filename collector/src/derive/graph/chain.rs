//! A trace's spans as parent links, and the walk from a span up to its nearest agent.

use std::sync::Arc;

use super::SpanId;
use crate::small_map::SmallMap;

/// Parent chains longer than this are broken (and cycles stop).
pub(super) const MAX_CHAIN: usize = 256;

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
    pub role: Role,
}

/// A trace's spans by id.
pub(super) type Nodes = SmallMap<SpanId, Node>;

/// What a span is to the calls below it, for the spans that may record a call that another
/// span already counts (`dedup.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// An application's LLM call.
    LlmClient,
    /// An MCP client operation; `names_server` when it draws the edge to its server.
    McpClient { names_server: bool },
    /// An A2A call, which draws the edge to its remote agent.
    A2aClient,
    /// A span a call passes through (an HTTP client span).
    PassThrough,
    /// Anything else: it ends the search.
    Boundary,
}

/// Which kind of second record a deferred span may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Duplicate {
    /// An inference server's span of an application's LLM call.
    LlmServer,
    /// An MCP client span under another of the same operation (a framework's span around
    /// the SDK's).
    McpClient,
    /// An MCP server span, whose edge the client span already drew.
    McpServerEdge,
}

/// Whether the deferred span's call is already counted above it.
pub(super) enum CallAbove {
    Counted,
    NotCounted,
    Missing(SpanId),
    Broken,
}

/// Walks up from `start` through pass-through spans to the first span that decides.
pub(super) fn call_above(nodes: &Nodes, start: Option<SpanId>, kind: Duplicate) -> CallAbove {
    let mut current = start;
    for _ in 0..MAX_CHAIN {
        let Some(span_id) = current else {
            return CallAbove::NotCounted;
        };
        let Some(node) = nodes.get(&span_id) else {
            return CallAbove::Missing(span_id);
        };
        match (kind, node.role) {
            (Duplicate::LlmServer, Role::LlmClient)
            | (Duplicate::McpClient, Role::McpClient { .. })
            | (Duplicate::McpServerEdge, Role::McpClient { names_server: true }) => {
                return CallAbove::Counted
            }
            (_, Role::PassThrough) | (Duplicate::McpServerEdge, Role::McpClient { names_server: false }) => {
                current = node.parent;
            }
            _ => return CallAbove::NotCounted,
        }
    }
    CallAbove::Broken
}

/// Whether the chain from `start` up to the nearest agent passes an A2A call.
pub(super) fn through_a2a(nodes: &Nodes, start: Option<SpanId>) -> bool {
    let mut current = start;
    for _ in 0..MAX_CHAIN {
        let Some(node) = current.and_then(|span_id| nodes.get(&span_id)) else {
            return false;
        };
        if node.role == Role::A2aClient {
            return true;
        }
        if node.agent.is_some() {
            return false;
        }
        current = node.parent;
    }
    false
}

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
