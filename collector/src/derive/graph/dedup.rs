//! One call, two spans, counted once:
//! - the application's LLM span and the inference server's span of the same request (vLLM's
//!   `llm_request`, kind SERVER) under it, often through an HTTP client span, or linked to it
//!   (a span link in the same trace). The call counts
//!   from the application's span: requests, tokens, cost, its agent's roll-up and graph edge.
//!   The server span keeps its span metrics and its forwarded timing attributes
//!   (`agentrace_llm_spans_deduplicated_total`);
//! - a framework's MCP client span around the MCP SDK's own client span of the same operation
//!   (`agentrace_mcp_spans_deduplicated_total`);
//! - the edge to an MCP server: drawn by the client span when it names the server
//!   (`server.address`), else by the server span, as `mcp:<its service>`.
//!
//! Such a span with a parent defers what it would count until the chain above it is known as
//! far as the first span that decides; with nothing above it, it counts as any span.

use agentrace_semconv::metric;
use agentrace_semconv::SpanClass;
use smallvec::smallvec;

use super::chain::{call_above, CallAbove, Duplicate, Role};
use super::waiting::{Deferred, Waiter};
use super::{settle, TraceState};
use crate::metrics::{Observation, Observe};
use crate::normalize::CanonicalSpan;
use crate::wire::span::SpanKind;

fn is_model_call(span: &CanonicalSpan<'_>) -> bool {
    matches!(span.class, SpanClass::Llm | SpanClass::Embedding)
}

/// Which second record of a call the span may be.
pub(super) fn may_duplicate(span: &CanonicalSpan<'_>) -> Option<Duplicate> {
    let server = span.kind == SpanKind::Server;
    match (span.fields.mcp_method, server) {
        _ if call_start(span).is_none() => None,
        (Some(_), false) => Some(Duplicate::McpClient),
        (Some(_), true) => Some(Duplicate::McpServerEdge),
        (None, true) if is_model_call(span) => Some(Duplicate::LlmServer),
        (None, _) => None,
    }
}

/// Where the search for the span counting the same call starts: the span an inference server's
/// span links to in its trace, else its parent.
pub(super) fn call_start(span: &CanonicalSpan<'_>) -> Option<[u8; 8]> {
    match span.fields.mcp_method {
        Some(_) => span.parent_span_id,
        None => span.linked_span_id.or(span.parent_span_id),
    }
}

/// What the span is to a span below it.
pub(super) fn role(span: &CanonicalSpan<'_>) -> Role {
    if span.fields.mcp_method.is_some() && span.kind != SpanKind::Server {
        return Role::McpClient { names_server: span.fields.server_address.is_some() };
    }
    match span.class {
        _ if span.remote_agent.is_some() => Role::A2aClient,
        _ if is_model_call(span) && span.kind != SpanKind::Server => Role::LlmClient,
        SpanClass::Other if span.fields.mcp_method.is_none() => Role::PassThrough,
        _ => Role::Boundary,
    }
}

/// A deferred span whose chain is known: dropped when a span above it counts the call,
/// otherwise counted as any span; parked again while the chain misses a span.
pub(super) fn settle_deferred<'o>(
    trace: &mut TraceState,
    deferred: Box<Deferred>,
    out: &mut impl Observe<'o>,
) {
    match call_above(&trace.nodes, deferred.parent, deferred.kind) {
        CallAbove::Missing(span_id) => trace.waiting.park(Some(span_id), Waiter::Deferred(deferred)),
        CallAbove::Broken => trace.waiting.park(None, Waiter::Deferred(deferred)),
        CallAbove::Counted => {
            let counter = match deferred.kind {
                Duplicate::LlmServer => metric::SELF_LLM_SPANS_DEDUPLICATED_TOTAL,
                Duplicate::McpClient => metric::SELF_MCP_SPANS_DEDUPLICATED_TOTAL,
                Duplicate::McpServerEdge => return,
            };
            out.push(Observation::new(counter, smallvec![], 1.0, None));
        }
        CallAbove::NotCounted => {
            for waiter in deferred.waiters {
                match waiter {
                    Waiter::Held(held) => match held.series.agent.clone() {
                        Some(agent) => held.series.emit(agent, out),
                        None => settle(trace, Waiter::Held(held), out),
                    },
                    waiter => settle(trace, waiter, out),
                }
            }
        }
    }
}
