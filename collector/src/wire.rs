//! The OTLP trace messages as the pipeline holds them: the same fields and wire format as
//! `opentelemetry-proto`'s, but every string and byte field is a [`Bytes`] view into the
//! received buffer instead of a fresh allocation.
//!
//! Decoding with prost from a `Bytes` buffer hands out slices of that buffer for these fields,
//! so a request of 512 spans with 20 attributes each costs a few vectors per span instead of
//! two allocations and copies per attribute; dropping it is as cheap. Encoding is prost's as
//! well, so what is forwarded is byte-compatible with the standard types (the tests decode it
//! with them). The receivers decode (`receive/decode.rs`) and check that strings are UTF-8
//! once, as prost does for `String` fields.
//!
//! [`raw`] is the forwarding view of the same bytes: resources and scopes decoded, each span
//! left as its encoded bytes (`enrich.rs` builds it). [`SpanPos`] names a span's place in a
//! request, the same in both.

use bytes::Bytes;
use prost::Message;

pub use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

/// A string field. Decoded requests have been checked, so [`Text::text`] is the string.
pub trait Text {
    /// The field as a string; "" for bytes that are not UTF-8 (which [`decode`] refuses).
    fn text(&self) -> &str;
}

impl Text for Bytes {
    fn text(&self) -> &str {
        std::str::from_utf8(self).unwrap_or_default()
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    #[prost(bytes = "bytes", tag = "3")]
    pub schema_url: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    #[prost(bytes = "bytes", tag = "3")]
    pub schema_url: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct Span {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub trace_state: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub parent_span_id: Bytes,
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    #[prost(bytes = "bytes", tag = "5")]
    pub name: Bytes,
    #[prost(enumeration = "span::SpanKind", tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<span::Event>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<span::Link>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

pub mod span {
    use bytes::Bytes;

    pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    use super::KeyValue;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(bytes = "bytes", tag = "2")]
        pub name: Bytes,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Link {
        #[prost(bytes = "bytes", tag = "1")]
        pub trace_id: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub span_id: Bytes,
        #[prost(bytes = "bytes", tag = "3")]
        pub trace_state: Bytes,
        #[prost(message, repeated, tag = "4")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "5")]
        pub dropped_attributes_count: u32,
        #[prost(fixed32, tag = "6")]
        pub flags: u32,
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(bytes = "bytes", tag = "2")]
    pub message: Bytes,
    #[prost(enumeration = "status::StatusCode", tag = "3")]
    pub code: i32,
}

pub mod status {
    pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "3")]
    pub entity_refs: Vec<EntityRef>,
}

#[derive(Clone, PartialEq, Message)]
pub struct EntityRef {
    #[prost(bytes = "bytes", tag = "1")]
    pub schema_url: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub r#type: Bytes,
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub id_keys: Vec<Bytes>,
    #[prost(bytes = "bytes", repeated, tag = "4")]
    pub description_keys: Vec<Bytes>,
}

#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub version: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    pub dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
    // `key_strindex` (3) is the profiles signal's; other signals are to read a pair as if it
    // were absent, and leaving it out makes each of a request's attributes 8 bytes smaller.
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    use bytes::Bytes;

    /// Variants named as in the OTLP proto, as `opentelemetry-proto` names them.
    #[allow(clippy::enum_variant_names)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(bytes = "bytes", tag = "1")]
        StringValue(Bytes),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        #[prost(bytes = "bytes", tag = "7")]
        BytesValue(Bytes),
        #[prost(int32, tag = "8")]
        StringValueStrindex(i32),
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

impl KeyValue {
    pub fn string(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self::new(key, any_value::Value::StringValue(value.into()))
    }

    pub fn new(key: impl Into<Bytes>, value: any_value::Value) -> Self {
        Self { key: key.into(), value: Some(AnyValue { value: Some(value) }) }
    }
}

pub mod raw;

/// Where a span sits in a request: the indexes of its resource, its scope and itself, the same
/// in the decoded request and in its forwarding view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpanPos {
    pub resource: usize,
    pub scope: usize,
    pub span: usize,
}

/// One span of a request, with what it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct SpanRef<'a> {
    pub pos: SpanPos,
    pub resource: Option<&'a Resource>,
    pub scope: Option<&'a InstrumentationScope>,
    pub span: &'a Span,
}

impl ExportTraceServiceRequest {
    pub fn span_at(&self, pos: SpanPos) -> Option<&Span> {
        self.resource_spans.get(pos.resource)?.scope_spans.get(pos.scope)?.spans.get(pos.span)
    }

    pub fn span_at_mut(&mut self, pos: SpanPos) -> Option<&mut Span> {
        self.resource_spans.get_mut(pos.resource)?.scope_spans.get_mut(pos.scope)?.spans.get_mut(pos.span)
    }

    /// Every span, in the order of the request.
    pub fn spans(&self) -> impl Iterator<Item = SpanRef<'_>> {
        self.resource_spans.iter().enumerate().flat_map(|(resource, resource_spans)| {
            resource_spans.scope_spans.iter().enumerate().flat_map(move |(scope, scope_spans)| {
                scope_spans.spans.iter().enumerate().map(move |(index, span)| SpanRef {
                    pos: SpanPos { resource, scope, span: index },
                    resource: resource_spans.resource.as_ref(),
                    scope: scope_spans.scope.as_ref(),
                    span,
                })
            })
        })
    }

    /// Every span, mutably, with its position.
    pub fn spans_mut(&mut self) -> impl Iterator<Item = (SpanPos, &mut Span)> {
        self.resource_spans.iter_mut().enumerate().flat_map(|(resource, resource_spans)| {
            resource_spans.scope_spans.iter_mut().enumerate().flat_map(move |(scope, scope_spans)| {
                scope_spans
                    .spans
                    .iter_mut()
                    .enumerate()
                    .map(move |(index, span)| (SpanPos { resource, scope, span: index }, span))
            })
        })
    }

    pub fn span_count(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .map(|scope_spans| scope_spans.spans.len())
            .sum()
    }
}

/// What forwarding reuses of a received request: the bytes it was decoded from, or its
/// forwarding view already cut (a request spread over the workers: each part's spans are
/// slices of the received bytes, so nothing is copied or encoded again).
#[derive(Clone, Debug)]
pub enum Received {
    Encoded(Bytes),
    View(raw::ExportTraceServiceRequest),
}

impl Received {
    /// The forwarding view; `None` for bytes that do not decode (which the receivers refuse,
    /// so only a broken invariant gets here).
    pub fn into_view(self) -> Option<raw::ExportTraceServiceRequest> {
        match self {
            Self::Encoded(encoded) => raw::ExportTraceServiceRequest::decode(encoded).ok(),
            Self::View(view) => Some(view),
        }
    }
}

/// A decoded request and the bytes it was decoded from (which forwarding reuses).
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    pub request: ExportTraceServiceRequest,
    pub encoded: Bytes,
}

/// The same message in the standard types, or the other way round: both sides share the
/// wire format, so a round trip through it converts (OTLP/JSON input, tests).
pub fn convert<From: Message, To: Message + Default>(message: &From) -> Result<To, prost::DecodeError> {
    To::decode(Bytes::from(message.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_name_the_same_span_in_every_view() {
        let span = |id: u8| Span { span_id: vec![id; 8].into(), ..Default::default() };
        let scope = |spans: Vec<Span>| ScopeSpans { spans, ..Default::default() };
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![scope(vec![span(1)]), scope(vec![])],
                    ..Default::default()
                },
                ResourceSpans { scope_spans: vec![scope(vec![span(2), span(3)])], ..Default::default() },
            ],
        };
        let positions: Vec<(SpanPos, u8)> =
            request.spans().map(|found| (found.pos, found.span.span_id[0])).collect();
        let at = |resource, scope, span| SpanPos { resource, scope, span };
        assert_eq!(positions, vec![(at(0, 0, 0), 1), (at(1, 0, 0), 2), (at(1, 0, 1), 3)]);
        assert_eq!(request.span_count(), 3);
        for (pos, id) in positions {
            assert_eq!(request.span_at(pos).expect("there").span_id[0], id);
        }
        assert!(request.span_at(at(0, 1, 0)).is_none());
        let mutated: Vec<SpanPos> = request.spans_mut().map(|(pos, _)| pos).collect();
        assert_eq!(mutated.len(), 3);
        let mut view: raw::ExportTraceServiceRequest = convert(&request).expect("same wire format");
        assert_eq!(
            Span::decode(view.span_at_mut(at(1, 0, 1)).expect("there").to_bytes()).expect("span").span_id[0],
            3
        );
    }
}
