//! Turns request bodies into requests: gzip with a size limit on the inflated bytes, then
//! protobuf (`proto.rs`, into the pipeline's zero-copy types of `wire.rs`, strings checked to
//! be UTF-8) or OTLP/JSON (the serde support of `opentelemetry-proto`, which knows OTLP's hex
//! ids and string-encoded 64-bit integers, then converted).

use std::io::Read;

use bytes::Bytes;

use prost::Message;

pub(crate) use super::json_size::decoded_bytes as json_decoded_bytes;
pub use super::proto::decoded_budget;
use super::proto::{self, Fault};
use super::walk::{weigh, Shape, LEAF};
use crate::wire::{Decoded, ExportTraceServiceRequest, KeyValue, ResourceSpans, Span};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
    #[error("invalid protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(String),
    #[error("invalid protobuf ExportTraceServiceRequest: a string field is not valid UTF-8")]
    Utf8,
    /// Mostly empty messages, which would take far more memory than their bytes.
    #[error("{}", proto::Fault::Amplified)]
    Amplified,
    #[error("invalid OTLP/JSON ExportTraceServiceRequest: {0}")]
    Json(#[from] serde_json::Error),
}

/// Inflates a gzip body, refusing to inflate past `limit` bytes (a gzip bomb stops there).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut inflated = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let allowed = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body).take(allowed).read_to_end(&mut inflated).map_err(DecodeError::Gzip)?;
    if inflated.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(inflated)
}

/// Parses OTLP/JSON, unless its objects would take more than the protobuf reader allows a body
/// of its size (`json_size.rs`), then reads it as protobuf.
pub fn json(body: &[u8]) -> Result<Decoded, DecodeError> {
    if json_decoded_bytes(body) > proto::decoded_budget(body.len()) {
        return Err(DecodeError::Amplified);
    }
    let standard: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_slice(body)?;
    let encoded = Bytes::from(prost::Message::encode_to_vec(&standard));
    // Freed before the second decoding, so that the two are never held at once.
    drop(standard);
    protobuf(encoded)
}

/// Decodes a protobuf request, its strings as views into `body`, and checks that they are
/// UTF-8.
pub fn protobuf(body: Bytes) -> Result<Decoded, DecodeError> {
    match proto::request(&body) {
        Ok(request) => Ok(Decoded { request, encoded: body }),
        Err(Fault::Utf8) => Err(DecodeError::Utf8),
        Err(Fault::Amplified) => Err(DecodeError::Amplified),
        Err(fault) => Err(DecodeError::Protobuf(fault.to_string())),
    }
}

/// What [`protobuf`] is held to: prost's derived decoder, then a pass that checks every string
/// is UTF-8. The tests and the fuzz target compare the two.
pub fn reference(body: Bytes) -> Result<ExportTraceServiceRequest, DecodeError> {
    let request =
        ExportTraceServiceRequest::decode(body).map_err(|error| DecodeError::Protobuf(error.to_string()))?;
    if request.resource_spans.iter().all(utf8_resource_spans) {
        Ok(request)
    } else {
        Err(DecodeError::Utf8)
    }
}

fn utf8(bytes: &Bytes) -> bool {
    proto::utf8(bytes)
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
    attributes.iter().all(|kv| utf8(&kv.key) && kv.value.as_ref().is_none_or(proto::utf8_value))
}

/// Spans in an encoded `ExportTraceServiceRequest`: the `spans` fields (2) of the
/// `scope_spans` (2) of the `resource_spans` (1), each counted and stepped over, not decoded.
/// `None` for bytes that are not such a message.
pub fn count_spans(message: &[u8]) -> Option<u64> {
    static REQUEST: Shape = Shape(&[(1, 0, &RESOURCE_SPANS)]);
    static RESOURCE_SPANS: Shape = Shape(&[(2, 0, &SCOPE_SPANS)]);
    static SCOPE_SPANS: Shape = Shape(&[(2, 1, &LEAF)]);
    weigh(message, &REQUEST).map(|spans| spans as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    }

    #[test]
    fn gzip_inflates_up_to_the_limit_and_no_further() {
        let body = gzip(&[b'a'; 1000]);
        assert_eq!(gunzip(&body, 1000).expect("at the limit").len(), 1000);
        assert!(matches!(gunzip(&body, 999), Err(DecodeError::TooLarge { limit: 999 })));
        assert!(matches!(gunzip(b"not gzip", 1000), Err(DecodeError::Gzip(_))));
    }

    #[test]
    fn otlp_json_with_hex_ids_and_string_integers() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "parentSpanId":"eee19b7ec3c1b173","name":"chat m","kind":3,"startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,"attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"12"}}],
            "status":{"code":2,"message":"boom"}}]}]}]}"#;
        let request = json(body).expect("valid OTLP/JSON").request;
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex::encode(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(span.parent_span_id.len(), 8);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 3);
        assert_eq!(span.status.as_ref().map(|status| status.code), Some(2));
        let value = span.attributes[0].value.as_ref().and_then(|value| value.value.clone());
        assert_eq!(value, Some(crate::wire::any_value::Value::IntValue(12)));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(json(b"{\"resourceSpans\": [}"), Err(DecodeError::Json(_))));
        assert!(matches!(json(b""), Err(DecodeError::Json(_))));
        assert!(matches!(protobuf(Bytes::from_static(&[0x0a, 0xff, 0xff])), Err(DecodeError::Protobuf(_))));
        assert!(protobuf(Bytes::new()).expect("an empty message is valid").request.resource_spans.is_empty());
    }

    #[test]
    fn strings_are_checked_as_utf_8_ascii_or_not() {
        use crate::wire::{any_value, AnyValue, KeyValue, ResourceSpans, ScopeSpans, Span};
        let request = |value: &'static [u8]| {
            let value = AnyValue { value: Some(any_value::Value::StringValue(Bytes::from_static(value))) };
            let attribute = KeyValue { key: Bytes::from_static(b"gen_ai.agent.name"), value: Some(value) };
            let span =
                Span { name: Bytes::from_static(b"chat"), attributes: vec![attribute], ..Default::default() };
            let scope = ScopeSpans { spans: vec![span], ..Default::default() };
            let resource_spans = ResourceSpans { scope_spans: vec![scope], ..Default::default() };
            Bytes::from(ExportTraceServiceRequest { resource_spans: vec![resource_spans] }.encode_to_vec())
        };
        assert!(protobuf(request(b"planner")).is_ok());
        assert!(protobuf(request("planificateur-é-日本".as_bytes())).is_ok(), "UTF-8 beyond ASCII");
        assert!(matches!(protobuf(request(b"caf\xe9")), Err(DecodeError::Utf8)), "Latin-1");
        assert!(matches!(protobuf(request(b"\xff")), Err(DecodeError::Utf8)));
        assert!(matches!(protobuf(request(b"ab\xe6\x97")), Err(DecodeError::Utf8)), "cut short");
    }

    #[test]
    fn spans_are_counted_without_reading_inside_them() {
        // A resource span holding one scope span that holds three spans; the second span's bytes
        // ("a") are no message, which counting does not look at.
        let scope_spans = [0x12, 0x00, 0x12, 0x01, b'a', 0x12, 0x00];
        let resource_spans = [&[0x12, scope_spans.len() as u8][..], &scope_spans].concat();
        let request = [&[0x0a, resource_spans.len() as u8][..], &resource_spans].concat();
        assert_eq!(count_spans(&request), Some(3));
        assert_eq!(count_spans(&request[..request.len() - 1]), None, "a length past the end");
    }
}
