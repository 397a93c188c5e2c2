//! Enrich: attributes the collector computed, added to the spans before they are forwarded,
//! so Tempo shows them: `agentrace.cost.usd` on LLM calls.

use agentrace_semconv::attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

/// A cost for the span at `[resource, scope, span]` in a request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanCost {
    pub position: [usize; 3],
    pub usd: f64,
}

/// Adds each cost to its span, unless the span already carries one (an upstream agentrace
/// collector computed it).
pub fn add_costs(request: &mut ExportTraceServiceRequest, costs: &[SpanCost]) {
    for cost in costs {
        let [resource, scope, span] = cost.position;
        let Some(span) = request
            .resource_spans
            .get_mut(resource)
            .and_then(|resource_spans| resource_spans.scope_spans.get_mut(scope))
            .and_then(|scope_spans| scope_spans.spans.get_mut(span))
        else {
            debug_assert!(false, "cost for a span position not in the request");
            continue;
        };
        if span.attributes.iter().any(|kv| kv.key == attr::AGENTRACE_COST_USD) {
            continue;
        }
        span.attributes.push(KeyValue {
            key: attr::AGENTRACE_COST_USD.to_owned(),
            value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(cost.usd)) }),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn costs_go_on_their_spans_once() {
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(), Span::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let cost = SpanCost { position: [0, 0, 1], usd: 0.5 };
        add_costs(&mut request, &[cost]);
        add_costs(&mut request, &[SpanCost { usd: 9.0, ..cost }]);
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert!(spans[0].attributes.is_empty());
        assert_eq!(spans[1].attributes.len(), 1);
        let value = spans[1].attributes[0].value.as_ref().and_then(|value| value.value.clone());
        assert_eq!(value, Some(any_value::Value::DoubleValue(0.5)));
    }
}
