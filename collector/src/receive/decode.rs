//! Turns request bodies into requests: gzip with a size limit on the inflated bytes, then
//! protobuf (prost, into the pipeline's zero-copy types of `otlp.rs`) or OTLP/JSON (the serde
//! support of `opentelemetry-proto`, which knows OTLP's hex ids and string-encoded 64-bit
//! integers, then converted).

use std::io::Read;

use bytes::Bytes;

use crate::otlp::{self, Decoded};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
    #[error("invalid protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid protobuf ExportTraceServiceRequest: {0}")]
    Strings(#[from] otlp::DecodeError),
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

pub fn protobuf(body: Bytes) -> Result<Decoded, DecodeError> {
    Ok(otlp::decode(body)?)
}

pub fn json(body: &[u8]) -> Result<Decoded, DecodeError> {
    let standard: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_slice(body)?;
    let encoded = Bytes::from(prost::Message::encode_to_vec(&standard));
    Ok(otlp::decode(encoded)?)
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
        assert_eq!(value, Some(crate::otlp::any_value::Value::IntValue(12)));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(json(b"{\"resourceSpans\": [}"), Err(DecodeError::Json(_))));
        assert!(matches!(json(b""), Err(DecodeError::Json(_))));
        assert!(matches!(protobuf(Bytes::from_static(&[0x0a, 0xff, 0xff])), Err(DecodeError::Strings(_))));
        assert!(protobuf(Bytes::new()).expect("an empty message is valid").request.resource_spans.is_empty());
    }
}
