//! The OTLP trace messages as the pipeline holds them: the same fields and wire format as
//! `opentelemetry-proto`'s, but every string and byte field is a [`Bytes`] view into the
//! received buffer instead of a fresh allocation.
//!
//! Decoding with prost from a `Bytes` buffer hands out slices of that buffer for these fields,
//! so a request of 512 spans with 20 attributes each costs a few vectors per span instead of
//! two allocations and copies per attribute; dropping it is as cheap. Encoding is prost's as
//! well, so what is forwarded is byte-compatible with the standard types (the tests decode it
//! with them). Strings are checked to be UTF-8 once, when a request is decoded ([`decode`]),
//! as prost does for `String` fields.
//!
//! [`raw`] is the forwarding view of the same bytes: resources and scopes decoded, each span
//! left as its encoded bytes. The processor reads the decoded request, then forwards the raw
//! view with only the spans it changed re-encoded, so forwarding costs a copy, not an encoding
//! of every attribute.

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
    #[prost(int32, tag = "3")]
    pub key_strindex: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    use bytes::Bytes;

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
        Self { key: key.into(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
    }
}

/// The forwarding view: a span is its encoded bytes. A repeated `bytes` field and a repeated
/// message field of the same number are the same on the wire, so this encodes and decodes
/// exactly as the standard `ExportTraceServiceRequest` does.
pub mod raw {
    use bytes::Bytes;

    use super::{InstrumentationScope, Resource};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
        #[prost(bytes = "bytes", tag = "3")]
        pub schema_url: Bytes,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        /// Each an encoded `Span`.
        #[prost(bytes = "bytes", repeated, tag = "2")]
        pub spans: Vec<Bytes>,
        #[prost(bytes = "bytes", tag = "3")]
        pub schema_url: Bytes,
    }
}

/// A decoded request and the bytes it was decoded from (which forwarding reuses).
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    pub request: ExportTraceServiceRequest,
    pub encoded: Bytes,
}

/// The forwarding view of `request`, which must still be the request `encoded` holds but for
/// the spans at `changed` ([resource, scope, span]) and any resource or scope attributes:
/// those are taken from `request`. `added` holds, for some spans, encoded attribute fields
/// to append to them.
///
/// A span not in `changed` goes out as it came in, fields this version of OTLP does not know
/// included (a newer client's fields reach the trace endpoint); redaction works on the
/// attribute fields OTLP defines, and a span it changes is re-encoded. Attributes are added by
/// appending their fields to the span's bytes: a repeated field may come in several runs, and
/// decoders join them in order, so nothing else of the span is encoded again. Should
/// `encoded` not decode, which cannot happen to bytes that decoded once, the whole request is
/// encoded from `request`.
pub fn forwarding_view(
    request: &ExportTraceServiceRequest,
    encoded: &Bytes,
    changed: &[[usize; 3]],
    added: &[([usize; 3], Bytes)],
) -> raw::ExportTraceServiceRequest {
    let mut view = match raw::ExportTraceServiceRequest::decode(encoded.clone()) {
        Ok(view) => view,
        Err(_) => convert(request).unwrap_or_default(),
    };
    for (raw_resource, resource) in view.resource_spans.iter_mut().zip(&request.resource_spans) {
        raw_resource.resource.clone_from(&resource.resource);
        for (raw_scope, scope) in raw_resource.scope_spans.iter_mut().zip(&resource.scope_spans) {
            raw_scope.scope.clone_from(&scope.scope);
        }
    }
    for [resource, scope, span] in changed.iter().copied() {
        let encoded = request
            .resource_spans
            .get(resource)
            .and_then(|resource_spans| resource_spans.scope_spans.get(scope))
            .and_then(|scope_spans| scope_spans.spans.get(span))
            .map(|span| Bytes::from(span.encode_to_vec()));
        if let (Some(encoded), Some(slot)) = (encoded, raw_span(&mut view, [resource, scope, span])) {
            *slot = encoded;
        }
    }
    for (position, fields) in added {
        if let Some(slot) = raw_span(&mut view, *position) {
            let mut joined = Vec::with_capacity(slot.len() + fields.len());
            joined.extend_from_slice(slot);
            joined.extend_from_slice(fields);
            *slot = Bytes::from(joined);
        }
    }
    view
}

fn raw_span(
    view: &mut raw::ExportTraceServiceRequest,
    [resource, scope, span]: [usize; 3],
) -> Option<&mut Bytes> {
    view.resource_spans
        .get_mut(resource)
        .and_then(|resource_spans| resource_spans.scope_spans.get_mut(scope))
        .and_then(|scope_spans| scope_spans.spans.get_mut(span))
}

/// `attributes` encoded as the attribute fields of a span, to append to its bytes.
pub fn encode_span_attributes(attributes: &[KeyValue]) -> Bytes {
    let mut fields = Vec::new();
    for attribute in attributes {
        prost::encoding::message::encode(SPAN_ATTRIBUTES_FIELD, attribute, &mut fields);
    }
    Bytes::from(fields)
}

/// `Span.attributes`' field number.
const SPAN_ATTRIBUTES_FIELD: u32 = 9;

/// Spans in an encoded `ExportTraceServiceRequest`: the `spans` fields (2) of the
/// `scope_spans` (2) of the `resource_spans` (1), each counted and stepped over, not decoded.
/// `None` for bytes that are not such a message.
pub fn count_spans(message: &[u8]) -> Option<u64> {
    // Field numbers of the nested messages that lead to a span, outermost first.
    const PATH: [u32; 3] = [1, 2, 2];
    fn walk(mut buf: &[u8], depth: usize) -> Option<u64> {
        use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
        let mut count = 0;
        while !buf.is_empty() {
            let (tag, wire_type) = decode_key(&mut buf).ok()?;
            if tag != PATH[depth] || wire_type != WireType::LengthDelimited {
                skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
                continue;
            }
            let length =
                usize::try_from(decode_varint(&mut buf).ok()?).ok().filter(|length| *length <= buf.len())?;
            let (field, rest) = buf.split_at(length);
            count += if depth + 1 == PATH.len() { 1 } else { walk(field, depth + 1)? };
            buf = rest;
        }
        Some(count)
    }
    walk(message, 0)
}

/// Why a request could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Protobuf(#[from] prost::DecodeError),
    #[error("a string field is not valid UTF-8")]
    Utf8,
}

/// Decodes a request, its strings as views into `bytes`, and checks that they are UTF-8.
pub fn decode(bytes: Bytes) -> Result<Decoded, DecodeError> {
    let request = ExportTraceServiceRequest::decode(bytes.clone())?;
    if request.resource_spans.iter().all(utf8_resource_spans) {
        Ok(Decoded { request, encoded: bytes })
    } else {
        Err(DecodeError::Utf8)
    }
}

/// The same message in the standard types, or the other way round: both sides share the
/// wire format, so a round trip through it converts (OTLP/JSON input, tests).
pub fn convert<From: Message, To: Message + Default>(message: &From) -> Result<To, prost::DecodeError> {
    To::decode(Bytes::from(message.encode_to_vec()))
}

fn utf8(bytes: &Bytes) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

fn utf8_resource_spans(resource_spans: &ResourceSpans) -> bool {
    utf8(&resource_spans.schema_url)
        && resource_spans.resource.as_ref().is_none_or(|resource| {
            utf8_attributes(&resource.attributes)
                && resource.entity_refs.iter().all(|entity| {
                    utf8(&entity.schema_url)
                        && utf8(&entity.r#type)
                        && entity.id_keys.iter().chain(&entity.description_keys).all(utf8)
                })
        })
        && resource_spans.scope_spans.iter().all(|scope_spans| {
            utf8(&scope_spans.schema_url)
                && scope_spans.scope.as_ref().is_none_or(|scope| {
                    utf8(&scope.name) && utf8(&scope.version) && utf8_attributes(&scope.attributes)
                })
                && scope_spans.spans.iter().all(utf8_span)
        })
}

fn utf8_span(span: &Span) -> bool {
    utf8(&span.trace_state)
        && utf8(&span.name)
        && utf8_attributes(&span.attributes)
        && span.events.iter().all(|event| utf8(&event.name) && utf8_attributes(&event.attributes))
        && span.links.iter().all(|link| utf8(&link.trace_state) && utf8_attributes(&link.attributes))
        && span.status.as_ref().is_none_or(|status| utf8(&status.message))
}

fn utf8_attributes(attributes: &[KeyValue]) -> bool {
    attributes.iter().all(|kv| utf8(&kv.key) && kv.value.as_ref().is_none_or(utf8_value))
}

fn utf8_value(value: &AnyValue) -> bool {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => utf8(text),
        Some(any_value::Value::ArrayValue(array)) => array.values.iter().all(utf8_value),
        Some(any_value::Value::KvlistValue(list)) => utf8_attributes(&list.values),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1 as standard;

    fn standard_request() -> standard::ExportTraceServiceRequest {
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}],"droppedAttributesCount":1},
            "scopeSpans":[{"scope":{"name":"s","version":"1"},"schemaUrl":"u","spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "parentSpanId":"eee19b7ec3c1b173","traceState":"a=b","flags":257,"name":"chat m","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":"2",
            "attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"a","value":{"arrayValue":{"values":[{"doubleValue":0.5},{"boolValue":true}]}}},
            {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"bytesValue":"AAE="}}]}}}],
            "events":[{"timeUnixNano":"3","name":"e","attributes":[{"key":"x","value":{"stringValue":"y"}}]}],
            "links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b170","flags":1}],
            "droppedLinksCount":2,"status":{"code":2,"message":"boom"}}]}]}]}"#;
        serde_json::from_slice(json).expect("valid OTLP/JSON")
    }

    #[test]
    fn a_round_trip_through_the_standard_types_keeps_every_byte() {
        let standard = standard_request();
        let bytes = standard.encode_to_vec();
        let decoded = decode(Bytes::from(bytes.clone())).expect("decodes");
        let ours = decoded.request.clone();
        assert_eq!(ours.encode_to_vec(), bytes);
        let view = forwarding_view(&decoded.request, &decoded.encoded, &[], &[]);
        assert_eq!(view.encode_to_vec(), bytes, "the raw view forwards the same bytes");
        assert_eq!(ours.resource_spans[0].scope_spans[0].spans[0].name.text(), "chat m");
        let back: standard::ExportTraceServiceRequest = convert(&ours).expect("converts back");
        assert_eq!(back, standard);
    }

    #[test]
    fn the_raw_view_carries_changed_spans_and_resources() {
        let mut decoded = decode(Bytes::from(standard_request().encode_to_vec())).expect("decodes");
        let resource_spans = &mut decoded.request.resource_spans[0];
        resource_spans.resource.as_mut().expect("resource").attributes.clear();
        resource_spans.scope_spans[0].spans[0].attributes.push(KeyValue::string("added", "yes"));
        let view = forwarding_view(&decoded.request, &decoded.encoded, &[[0, 0, 0]], &[]);
        let standard: standard::ExportTraceServiceRequest = convert(&view).expect("standard");
        let ours: standard::ExportTraceServiceRequest = convert(&decoded.request).expect("standard");
        assert_eq!(standard, ours);
        assert!(standard.resource_spans[0].resource.as_ref().expect("resource").attributes.is_empty());
    }

    #[test]
    fn appended_attribute_fields_decode_as_the_span_s_last_attributes() {
        let decoded = decode(Bytes::from(standard_request().encode_to_vec())).expect("decodes");
        let added =
            encode_span_attributes(&[KeyValue::string("added", "yes"), KeyValue::string("more", "too")]);
        let view = forwarding_view(&decoded.request, &decoded.encoded, &[], &[([0, 0, 0], added)]);
        let forwarded: standard::ExportTraceServiceRequest = convert(&view).expect("standard");
        let mut expected = standard_request();
        let attributes = &mut expected.resource_spans[0].scope_spans[0].spans[0].attributes;
        for (key, value) in [("added", "yes"), ("more", "too")] {
            attributes.push(opentelemetry_proto::tonic::common::v1::KeyValue {
                key: key.to_owned(),
                value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        value.to_owned(),
                    )),
                }),
                ..Default::default()
            });
        }
        assert_eq!(forwarded, expected);
    }

    #[test]
    fn strings_that_are_not_utf8_are_refused() {
        let mut request = decode(Bytes::from(standard_request().encode_to_vec())).expect("decodes").request;
        request.resource_spans[0].scope_spans[0].spans[0].attributes[0].key =
            Bytes::from_static(&[0xff, 0xfe]);
        assert!(matches!(decode(Bytes::from(request.encode_to_vec())), Err(DecodeError::Utf8)));
    }
}
