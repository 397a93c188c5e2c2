//! Enrich: attributes the collector computed, added to the spans before they are forwarded,
//! so Tempo shows them: `agentrace.cost.usd` on LLM calls, `agentrace.gpu.*` on LLM and
//! model-load spans.

use agentrace_semconv::attr;
use bytes::Bytes;

use crate::gpu::WindowStats;
use crate::otlp::{self, any_value, ExportTraceServiceRequest, KeyValue};
use crate::redact::Redactor;

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

/// Each span's facts as attribute fields to append to its encoded bytes
/// (`otlp::forwarding_view`), except those the span already carries (an upstream agentrace
/// collector computed them) and those the redaction rules drop; hashed ones are hashed.
pub fn additions(
    request: &ExportTraceServiceRequest,
    all_facts: &[SpanFacts],
    redactor: &Redactor,
) -> Vec<([usize; 3], Bytes)> {
    let mut additions = Vec::with_capacity(all_facts.len());
    for facts in all_facts {
        let [resource, scope, span] = facts.position;
        let Some(span) = request
            .resource_spans
            .get(resource)
            .and_then(|resource_spans| resource_spans.scope_spans.get(scope))
            .and_then(|scope_spans| scope_spans.spans.get(span))
        else {
            debug_assert!(false, "facts for a span position not in the request");
            continue;
        };
        let mut added = attributes(facts);
        added.retain(|attribute| !span.attributes.iter().any(|kv| kv.key == attribute.key));
        redactor.redact(&mut added);
        if !added.is_empty() {
            additions.push((facts.position, otlp::encode_span_attributes(&added)));
        }
    }
    additions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn facts_go_on_their_spans_once_and_redaction_rules_apply() {
        let carries_cost =
            Span { attributes: vec![double(attr::AGENTRACE_COST_USD, 9.0)], ..Default::default() };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(), Span::default(), carries_cost],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let facts = |span| SpanFacts { position: [0, 0, span], cost_usd: Some(0.5), gpu: None };
        let keep_all = Redactor::new(true, Vec::new(), Vec::new());
        let added = additions(&request, &[facts(1), facts(2)], &keep_all);
        assert_eq!(added.len(), 1, "the span that already has a cost gets none");
        assert_eq!(
            added[0],
            ([0, 0, 1], otlp::encode_span_attributes(&[double(attr::AGENTRACE_COST_USD, 0.5)]))
        );
        let no_cost = Redactor::new(true, vec![attr::AGENTRACE_COST_USD.to_owned()], Vec::new());
        assert!(additions(&request, &[facts(1)], &no_cost).is_empty());
    }
}
