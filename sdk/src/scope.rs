//! Which agent a span belongs to. A small `tracing` layer remembers, per span, the agent
//! name of the nearest enclosing agent invocation, so every helper span opened inside it can
//! carry `gen_ai.agent.name` — across `.await` points and threads, because it follows the
//! `tracing` span tree rather than a thread-local.

use std::sync::Arc;

use agentrace_semconv::attr;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The agent a span runs under, stored in the span's extensions.
#[derive(Clone, Debug)]
struct AgentName(Arc<str>);

/// Records the agent of every new span: its own `gen_ai.agent.name` field, or its parent's.
#[derive(Clone, Copy, Debug, Default)]
pub struct AgentScopeLayer;

struct AgentField(Option<String>);

impl Visit for AgentField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == attr::GEN_AI_AGENT_NAME {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == attr::GEN_AI_AGENT_NAME {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for AgentScopeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let mut own = AgentField(None);
        attributes.record(&mut own);
        let agent = match own.0 {
            Some(name) => Some(AgentName(Arc::from(name))),
            None => span.parent().and_then(|parent| parent.extensions().get::<AgentName>().cloned()),
        };
        if let Some(agent) = agent {
            span.extensions_mut().insert(agent);
        }
    }
}

/// The agent whose invocation the current span belongs to, if any (and if the
/// [`AgentScopeLayer`] is installed).
pub fn current_agent() -> Option<Arc<str>> {
    let current = tracing::Span::current();
    let id = current.id()?;
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(&id)?;
        let agent = span.extensions().get::<AgentName>().map(|agent| agent.0.clone());
        agent
    })
}
