//! The edges a span draws in the agent graph: to an agent, a tool, a model, an MCP server, an
//! A2A call's remote agent.

use std::sync::Arc;

use agentrace_semconv::metric::graph_node;
use agentrace_semconv::SpanClass;
use smallvec::SmallVec;

use crate::metrics::{truncated, SharedNames};
use crate::normalize::CanonicalSpan;

pub(super) fn agent_name<'a>(span: &CanonicalSpan<'a>) -> &'a str {
    truncated(span.fields.agent.unwrap_or(span.name))
}

/// The callees of the edges a span draws, with the services that run them: an agent, a tool,
/// a model, an MCP server (by the server span's service, or the address the client names), an
/// A2A call's remote agent (by its address).
pub(super) fn edge_targets(
    span: &CanonicalSpan<'_>,
    service: &Arc<str>,
    names: &mut SharedNames,
    scratch: &mut String,
) -> SmallVec<[(Arc<str>, Arc<str>); 2]> {
    let mut targets = SmallVec::new();
    let mut prefixed = |prefix: &str, name: Option<&str>, names: &mut SharedNames| {
        scratch.clear();
        scratch.push_str(prefix);
        scratch.push_str(name.unwrap_or_default());
        names.get(truncated(scratch))
    };
    let fields = &span.fields;
    let server_span = span.kind == crate::wire::span::SpanKind::Server;
    let address = fields.server_address.map(|address| names.get(truncated(address)));
    match span.class {
        _ if fields.mcp_method.is_some() && server_span => {
            targets.push((prefixed(graph_node::MCP_PREFIX, Some(span.service), names), service.clone()));
        }
        SpanClass::Agent => targets.push((names.get(agent_name(span)), service.clone())),
        SpanClass::Tool => {
            targets.push((prefixed(graph_node::TOOL_PREFIX, fields.tool, names), service.clone()))
        }
        SpanClass::Llm | SpanClass::Embedding => {
            targets.push((prefixed(graph_node::MODEL_PREFIX, fields.model, names), service.clone()));
        }
        SpanClass::Other => {
            if let Some(remote) = span.remote_agent {
                let remote_service = address.clone().unwrap_or_else(|| names.get(""));
                targets.push((names.get(truncated(remote)), remote_service));
            }
        }
        SpanClass::Step | SpanClass::ModelLoad => {}
    }
    if let (Some(address), Some(_), false) = (address, fields.mcp_method, server_span) {
        targets.push((prefixed(graph_node::MCP_PREFIX, Some(&address), names), address));
    }
    targets
}
