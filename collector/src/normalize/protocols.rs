//! What the GenAI conventions v0.1.0 add on top of the dialect tables: MCP client and server
//! operations, A2A calls to a remote agent, the `plan` and memory operations, and guardrail
//! results.
//!
//! - An MCP CLIENT span of `tools/call` is a tool call of the calling agent, its tool named by
//!   `gen_ai.tool.name` or the span name (`tools/call get_weather`, or the Python SDK's
//!   `MCP send tools/call get_weather`). Any other MCP span is an operation, not an agent's
//!   tool call: the server side of a call is counted on the client side.
//! - An A2A CLIENT span names the remote agent in `gen_ai.agent.name` (from its agent card):
//!   that is the callee, not the span's own agent.

use std::borrow::Cow;

use agentrace_semconv::attr::{self, mcp, operation};
use agentrace_semconv::{GenAiFields, SpanClass};

use super::{attr_value, string_attribute};
use crate::wire::{span::SpanKind, Span, Text};
use agentrace_semconv::dialect::AttrValue;

/// A span's class and names once the protocols' rules applied; returns the remote agent of an
/// A2A call.
pub(super) fn apply<'a>(
    span: &'a Span,
    class: &mut SpanClass,
    fields: &mut GenAiFields<'a>,
) -> Option<&'a str> {
    let name = span.name.text();
    if let Some(method) = fields.mcp_method {
        let is_tool_call = span.kind() == SpanKind::Client && method == mcp::TOOLS_CALL;
        *class = if is_tool_call { SpanClass::Tool } else { SpanClass::Other };
        if fields.tool.is_none() {
            fields.tool = target_after(name, method);
        }
        return None;
    }
    if fields.a2a_method.is_some() && span.kind() == SpanKind::Client {
        *class = SpanClass::Other;
        return fields.agent.take();
    }
    match fields.operation {
        Some(operation::PLAN) if fields.step.is_none() => fields.step = Some(operation::PLAN),
        Some(memory) if operation::MEMORY.contains(&memory) && fields.tool.is_none() => {
            fields.tool = Some(memory);
        }
        _ => {}
    }
    None
}

/// The word after `method` in a span name: `get_weather` in `MCP send tools/call get_weather`.
fn target_after<'a>(name: &'a str, method: &str) -> Option<&'a str> {
    let at = name.find(method)?;
    let rest = name[at + method.len()..].trim();
    (!rest.is_empty()).then_some(rest)
}

/// `(guardrail, decision)` of each `gen_ai.guardrail.result` event: the guardrail named by the
/// event, else by the span; the decision is the provider's own value, as the conventions ask.
/// The span's own guardrail name is looked for only when it has such an event (most spans
/// have none, and the lookup searches the span name).
pub(super) fn guardrail_results<'a>(span: &'a Span) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut events =
        span.events.iter().filter(|event| event.name == attr::GEN_AI_GUARDRAIL_RESULT_EVENT).peekable();
    if events.peek().is_none() {
        return Vec::new();
    }
    let span_guardrail = string_attribute(&span.attributes, attr::GEN_AI_GUARDRAIL_COMPONENT_NAME)
        .or_else(|| target_after(span.name.text(), operation::APPLY_GUARDRAIL));
    events
        .map(|event| {
            let guardrail = string_attribute(&event.attributes, attr::GEN_AI_GUARDRAIL_COMPONENT_NAME)
                .or(span_guardrail)
                .unwrap_or_default();
            let value = event.attributes.iter().find(|kv| kv.key == attr::GEN_AI_GUARDRAIL_RESULT_VALUE);
            let decision = match value.map(attr_value) {
                Some(AttrValue::Str(text)) => Cow::Borrowed(text),
                Some(AttrValue::Bool(flag)) => Cow::Borrowed(if flag { "true" } else { "false" }),
                Some(AttrValue::Int(number)) => Cow::Owned(number.to_string()),
                Some(AttrValue::Double(number)) => Cow::Owned(number.to_string()),
                Some(AttrValue::Other) | None => Cow::Borrowed(""),
            };
            (guardrail, decision)
        })
        .collect()
}
