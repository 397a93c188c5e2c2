//! Spreads a request's spans over the processing workers (`--workers`) by trace id, so that
//! every span of a trace meets the same worker: the agent graph pairs calls and attributes
//! spans within a trace, and each worker holds its own graph window.
//!
//! A request whose spans all go to one worker (always, with one worker) goes whole. Otherwise
//! it becomes one part per worker it touches, each with the resources and scopes of its spans
//! and its own encoded bytes, cut from the received ones (the spans' bytes copied, never
//! encoded again), so that forwarding still reuses them.

use bytes::Bytes;
use prost::Message;

use crate::wire::{
    raw, ExportTraceServiceRequest, InstrumentationScope, Received, Resource, ResourceSpans, ScopeSpans, Span,
};

/// One worker's share of a request.
#[derive(Debug)]
pub struct Part {
    pub worker: usize,
    pub request: ExportTraceServiceRequest,
    pub received: Received,
    pub spans: usize,
}

/// The worker that processes the spans of the trace `trace_id`. Trace ids are random (W3C),
/// so their low 8 bytes spread traces evenly; mixed all the same, for clients that count.
pub fn worker_of(trace_id: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let low = trace_id.get(8..16).and_then(|bytes| bytes.try_into().ok()).map_or(0, u64::from_le_bytes);
    let high = trace_id.get(..8).and_then(|bytes| bytes.try_into().ok()).map_or(0, u64::from_le_bytes);
    let mixed = mix(mix(low) ^ high);
    (mixed % workers as u64) as usize
}

/// The finalizer of MurmurHash3's 64-bit variant: every input bit moves every output bit.
fn mix(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value = value.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    value ^ (value >> 33)
}

/// `request` (decoded from `encoded`, `spans` spans) in parts, one per worker it touches.
pub fn split(request: ExportTraceServiceRequest, encoded: Bytes, spans: usize, workers: usize) -> Vec<Part> {
    if workers <= 1 {
        return vec![Part { worker: 0, request, received: Received::Encoded(encoded), spans }];
    }
    let owners: Vec<usize> = request.spans().map(|found| worker_of(&found.span.trace_id, workers)).collect();
    let Some(&first) = owners.first() else {
        return vec![Part { worker: 0, request, received: Received::Encoded(encoded), spans }];
    };
    if owners.iter().all(|owner| *owner == first) {
        return vec![Part { worker: first, request, received: Received::Encoded(encoded), spans }];
    }
    let view = raw::ExportTraceServiceRequest::decode(encoded).unwrap_or_default();
    let mut parts: Vec<Builder> = (0..workers).map(|_| Builder::default()).collect();
    let mut owner = owners.into_iter();
    let mut raw_resources = view.resource_spans.into_iter();
    for (resource_index, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let ResourceSpans { resource, scope_spans, schema_url } = resource_spans;
        let mut raw_scopes = raw_resources.next().unwrap_or_default().scope_spans.into_iter();
        for (scope_index, scope_spans) in scope_spans.into_iter().enumerate() {
            let ScopeSpans { scope, spans, schema_url: scope_schema_url } = scope_spans;
            let mut raw_spans = raw_scopes.next().unwrap_or_default().spans.into_iter();
            for span in spans {
                let Some(part) = parts.get_mut(owner.next().unwrap_or(0)) else { continue };
                if part.at != Some((resource_index, scope_index)) {
                    if part.at.map(|(resource, _)| resource) != Some(resource_index) {
                        part.open_resource(&resource, &schema_url);
                    }
                    part.open_scope(&scope, &scope_schema_url);
                    part.at = Some((resource_index, scope_index));
                }
                part.push(span, raw_spans.next().unwrap_or_default().encoded);
            }
        }
    }
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, part)| part.spans > 0)
        .map(|(worker, part)| Part {
            worker,
            received: Received::View(part.view),
            request: part.request,
            spans: part.spans,
        })
        .collect()
}

/// A part being cut: its request decoded and raw alike, and the resource and scope (by their
/// index in the received request) its last spans came from. Spans come in request order, so
/// a span either joins the part's last scope or opens a new one.
#[derive(Default)]
struct Builder {
    request: ExportTraceServiceRequest,
    view: raw::ExportTraceServiceRequest,
    at: Option<(usize, usize)>,
    spans: usize,
}

impl Builder {
    fn open_resource(&mut self, resource: &Option<Resource>, schema_url: &Bytes) {
        let (resource, schema_url) = (resource.clone(), schema_url.clone());
        self.view.resource_spans.push(raw::ResourceSpans {
            resource: resource.clone(),
            scope_spans: Vec::new(),
            schema_url: schema_url.clone(),
        });
        self.request.resource_spans.push(ResourceSpans { resource, scope_spans: Vec::new(), schema_url });
    }

    fn open_scope(&mut self, scope: &Option<InstrumentationScope>, schema_url: &Bytes) {
        let (scope, schema_url) = (scope.clone(), schema_url.clone());
        if let Some(resource) = self.view.resource_spans.last_mut() {
            resource.scope_spans.push(raw::ScopeSpans {
                scope: scope.clone(),
                spans: Vec::new(),
                schema_url: schema_url.clone(),
            });
        }
        if let Some(resource) = self.request.resource_spans.last_mut() {
            resource.scope_spans.push(ScopeSpans { scope, spans: Vec::new(), schema_url });
        }
    }

    fn push(&mut self, span: Span, encoded: Bytes) {
        let scope =
            self.request.resource_spans.last_mut().and_then(|resource| resource.scope_spans.last_mut());
        let raw_scope =
            self.view.resource_spans.last_mut().and_then(|resource| resource.scope_spans.last_mut());
        if let (Some(scope), Some(raw_scope)) = (scope, raw_scope) {
            scope.spans.push(span);
            raw_scope.spans.push(encoded.into());
            self.spans += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{any_value, AnyValue, KeyValue};

    fn span(trace: u8, span: u8) -> Span {
        Span {
            trace_id: Bytes::from(vec![trace; 16]),
            span_id: Bytes::from(vec![span; 8]),
            name: Bytes::from(format!("span {span}")),
            ..Default::default()
        }
    }

    fn named(kind: &str, name: &str) -> Vec<KeyValue> {
        let value = AnyValue { value: Some(any_value::Value::StringValue(Bytes::from(name.to_owned()))) };
        vec![KeyValue { key: Bytes::from(kind.to_owned()), value: Some(value) }]
    }

    /// Two resources of two scopes each, spans of traces 1…5 mixed in every scope.
    fn request() -> ExportTraceServiceRequest {
        let scope = |name: &str, spans: Vec<Span>| ScopeSpans {
            scope: Some(InstrumentationScope { name: Bytes::from(name.to_owned()), ..Default::default() }),
            spans,
            ..Default::default()
        };
        let resource = |service: &str, scopes: Vec<ScopeSpans>| ResourceSpans {
            resource: Some(Resource { attributes: named("service.name", service), ..Default::default() }),
            scope_spans: scopes,
            ..Default::default()
        };
        let mut next = 0u8;
        let mut spans = |traces: &[u8]| -> Vec<Span> {
            traces
                .iter()
                .map(|trace| {
                    next += 1;
                    span(*trace, next)
                })
                .collect()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                resource("a", vec![scope("x", spans(&[1, 2, 3, 1])), scope("y", spans(&[4, 5, 2]))]),
                resource("b", vec![scope("x", spans(&[5, 3, 1, 4])), scope("z", spans(&[2]))]),
            ],
        }
    }

    /// Each span with its resource's service and its scope's name, in request order.
    fn placed(request: &ExportTraceServiceRequest) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        request
            .spans()
            .map(|found| {
                let service =
                    found.resource.map(|resource| resource.attributes[0].clone()).unwrap_or_default();
                let service = match service.value.and_then(|value| value.value) {
                    Some(any_value::Value::StringValue(text)) => text.to_vec(),
                    _ => Vec::new(),
                };
                let scope = found.scope.map(|scope| scope.name.to_vec()).unwrap_or_default();
                (found.span.span_id.to_vec(), service, scope)
            })
            .collect()
    }

    #[test]
    fn with_one_worker_or_one_trace_the_request_goes_whole() {
        let encoded = Bytes::from(request().encode_to_vec());
        let parts = split(request(), encoded.clone(), 14, 1);
        assert_eq!((parts.len(), parts[0].worker, parts[0].spans), (1, 0, 14));
        assert!(
            matches!(&parts[0].received, Received::Encoded(bytes) if *bytes == encoded),
            "the received bytes themselves"
        );

        let one_trace = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![span(7, 1), span(7, 2)], ..Default::default() }],
                ..Default::default()
            }],
        };
        let parts = split(one_trace.clone(), Bytes::from(one_trace.encode_to_vec()), 2, 4);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].worker, worker_of(&[7; 16], 4));
    }

    #[test]
    fn every_span_goes_once_with_its_trace_resource_and_scope_and_the_bytes_match() {
        let whole = request();
        let workers = 3;
        let received = Bytes::from(whole.encode_to_vec());
        let parts = split(whole.clone(), received.clone(), 14, workers);
        assert!(parts.len() > 1, "five traces over three workers touch more than one");
        let mut seen = Vec::new();
        for part in &parts {
            let Received::View(view) = &part.received else { panic!("a part has its own view") };
            assert_eq!(
                ExportTraceServiceRequest::decode(Bytes::from(view.encode_to_vec())).expect("decodes"),
                part.request
            );
            for span in view
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .flat_map(|scope| &scope.spans)
                .map(|span| &span.encoded)
            {
                let offset = span.as_ptr() as usize - received.as_ptr() as usize;
                assert!(
                    offset + span.len() <= received.len(),
                    "a span's bytes are a slice of the received ones"
                );
            }
            assert_eq!(part.spans, part.request.span_count());
            for found in part.request.spans() {
                assert_eq!(
                    worker_of(&found.span.trace_id, workers),
                    part.worker,
                    "a trace stays with its worker"
                );
            }
            seen.extend(placed(&part.request));
        }
        let mut expected = placed(&whole);
        expected.sort();
        seen.sort();
        assert_eq!(seen, expected, "each span once, under its own resource and scope");
    }

    #[test]
    fn random_trace_ids_spread_evenly() {
        let mut counts = [0usize; 4];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..40_000 {
            let mut trace_id = [0u8; 16];
            for chunk in trace_id.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            counts[worker_of(&trace_id, 4)] += 1;
        }
        assert!(counts.iter().all(|count| (9_000..11_000).contains(count)), "{counts:?}");
    }
}
