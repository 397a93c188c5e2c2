//! Enrich: attributes the collector computed, added to the spans before they are forwarded,
//! so Tempo shows them: `agentrace.cost.usd` on LLM calls, `agentrace.gpu.*` on LLM and
//! model-load spans.

use agentrace_semconv::attr;
use bytes::Bytes;

use crate::gpu::WindowStats;
use crate::otlp::{any_value, ExportTraceServiceRequest, KeyValue};

/// What to add to the span at `[resource, scope, span]` in a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanFacts {
    pub position: [usize; 3],
    pub cost_usd: Option<f64>,
    pub gpu: Option<WindowStats>,
}

fn key(name: &'static str) -> Bytes {
    Bytes::from_static(name.as_bytes())
}

fn double(name: &'static str, value: f64) -> KeyValue {
    KeyValue::new(key(name), any_value::Value::DoubleValue(value))
}

fn attributes(facts: &SpanFacts) -> Vec<KeyValue> {
    let mut attributes = Vec::new();
    if let Some(usd) = facts.cost_usd {
        attributes.push(double(attr::AGENTRACE_COST_USD, usd));
    }
    if let Some(gpu) = &facts.gpu {
        attributes.push(KeyValue::string(key(attr::AGENTRACE_GPU_UUID), gpu.uuids.join(",")));
        attributes.push(double(attr::AGENTRACE_GPU_UTILIZATION_AVG, gpu.utilization_avg));
        attributes.push(double(attr::AGENTRACE_GPU_UTILIZATION_MAX, gpu.utilization_max));
        attributes.push(KeyValue::new(
            key(attr::AGENTRACE_GPU_MEMORY_USED_MAX_BYTES),
            any_value::Value::IntValue(i64::try_from(gpu.memory_used_max_bytes).unwrap_or(i64::MAX)),
        ));
        attributes.push(double(attr::AGENTRACE_GPU_POWER_AVG_WATTS, gpu.power_avg_watts));
    }
    attributes
}

/// Adds each span's facts as attributes, except those the span already carries (an upstream
/// agentrace collector computed them).
pub fn apply(request: &mut ExportTraceServiceRequest, all_facts: &[SpanFacts]) {
    for facts in all_facts {
        let [resource, scope, span] = facts.position;
        let Some(span) = request
            .resource_spans
            .get_mut(resource)
            .and_then(|resource_spans| resource_spans.scope_spans.get_mut(scope))
            .and_then(|scope_spans| scope_spans.spans.get_mut(span))
        else {
            debug_assert!(false, "cost for a span position not in the request");
            continue;
        };
        for attribute in attributes(facts) {
            if !span.attributes.iter().any(|kv| kv.key == attribute.key) {
                span.attributes.push(attribute);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn facts_go_on_their_spans_once() {
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(), Span::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let facts = SpanFacts { position: [0, 0, 1], cost_usd: Some(0.5), gpu: None };
        apply(&mut request, std::slice::from_ref(&facts));
        apply(&mut request, &[SpanFacts { cost_usd: Some(9.0), ..facts }]);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert!(spans[0].attributes.is_empty());
        assert_eq!(spans[1].attributes.len(), 1);
        let value = spans[1].attributes[0].value.as_ref().and_then(|value| value.value.clone());
        assert_eq!(value, Some(any_value::Value::DoubleValue(0.5)));
    }
}
