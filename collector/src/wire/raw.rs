//! The forwarding view: resources and scopes decoded, each span its encoded bytes as received,
//! with any fields forwarding adds to it kept beside them ([`SpanBytes`]). A repeated `bytes`
//! field and a repeated message field of the same number are the same on the wire, so this
//! encodes and decodes exactly as the standard `ExportTraceServiceRequest` does.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::{InstrumentationScope, Resource, SpanPos};

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

/// Encoded by hand (below): a span's two parts go out as one `Span` message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScopeSpans {
    pub scope: Option<InstrumentationScope>,
    pub spans: Vec<SpanBytes>,
    pub schema_url: Bytes,
}

/// One span as it is forwarded: its encoded bytes as received (or encoded again when redaction
/// changed it), then `appended`, encoded `Span` fields that forwarding adds (attributes). A
/// message's fields may come in any order, so the two parts are one span on the wire; kept
/// apart, a span that gains attributes is not copied to gain them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanBytes {
    pub encoded: Bytes,
    pub appended: Bytes,
}

impl SpanBytes {
    pub fn len(&self) -> usize {
        self.encoded.len() + self.appended.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The span's bytes in one piece (copied when fields were appended), for tests to decode.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Bytes {
        if self.appended.is_empty() {
            return self.encoded.clone();
        }
        [&self.encoded[..], &self.appended[..]].concat().into()
    }
}

impl From<Bytes> for SpanBytes {
    fn from(encoded: Bytes) -> Self {
        Self { encoded, appended: Bytes::new() }
    }
}

const SCOPE: u32 = 1;
const SPANS: u32 = 2;
const SCHEMA_URL: u32 = 3;

impl Message for ScopeSpans {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(scope) = &self.scope {
            encoding::message::encode(SCOPE, scope, buf);
        }
        for span in &self.spans {
            encoding::encode_key(SPANS, WireType::LengthDelimited, buf);
            encoding::encode_varint(span.len() as u64, buf);
            buf.put_slice(&span.encoded);
            buf.put_slice(&span.appended);
        }
        if !self.schema_url.is_empty() {
            encoding::bytes::encode(SCHEMA_URL, &self.schema_url, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            SCOPE => {
                encoding::message::merge(wire_type, self.scope.get_or_insert_with(Default::default), buf, ctx)
            }
            SPANS => {
                let mut encoded = Bytes::new();
                encoding::bytes::merge(wire_type, &mut encoded, buf, ctx)?;
                self.spans.push(SpanBytes::from(encoded));
                Ok(())
            }
            SCHEMA_URL => encoding::bytes::merge(wire_type, &mut self.schema_url, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let scope = self.scope.as_ref().map_or(0, |scope| encoding::message::encoded_len(SCOPE, scope));
        let spans: usize =
            self.spans.iter().map(|span| span.len() + encoding::encoded_len_varint(span.len() as u64)).sum();
        let schema_url = match self.schema_url.is_empty() {
            true => 0,
            false => encoding::bytes::encoded_len(SCHEMA_URL, &self.schema_url),
        };
        scope + encoding::key_len(SPANS) * self.spans.len() + spans + schema_url
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl ExportTraceServiceRequest {
    pub fn span_at_mut(&mut self, pos: SpanPos) -> Option<&mut SpanBytes> {
        self.resource_spans.get_mut(pos.resource)?.scope_spans.get_mut(pos.scope)?.spans.get_mut(pos.span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{KeyValue, Span};

    fn span(id: u8) -> Span {
        Span { span_id: vec![id; 8].into(), name: "call".into(), ..Default::default() }
    }

    #[test]
    fn a_span_with_fields_appended_decodes_as_one_with_them() {
        let attribute = KeyValue { key: "agentrace.cost.usd".into(), value: None };
        let mut appended = Vec::new();
        encoding::message::encode(9, &attribute, &mut appended);
        let scope = ScopeSpans {
            scope: Some(InstrumentationScope { name: "lib".into(), ..Default::default() }),
            spans: vec![
                SpanBytes { encoded: span(1).encode_to_vec().into(), appended: appended.into() },
                SpanBytes::from(Bytes::from(span(2).encode_to_vec())),
            ],
            schema_url: "https://schema".into(),
        };
        let encoded = scope.encode_to_vec();
        assert_eq!(encoded.len(), scope.encoded_len());
        let standard = crate::wire::ScopeSpans::decode(&encoded[..]).expect("the standard message decodes");
        assert_eq!(standard.spans[0], Span { attributes: vec![attribute], ..span(1) });
        assert_eq!(standard.spans[1], span(2));
        assert_eq!(standard.scope.expect("a scope").name, "lib");
        assert_eq!(standard.schema_url, "https://schema");
        // Decoded again, each span is one piece, and encodes to the same bytes.
        let again = ScopeSpans::decode(Bytes::from(encoded.clone())).expect("decodes");
        assert!(again.spans.iter().all(|span| span.appended.is_empty()));
        assert_eq!(again.encode_to_vec(), encoded);
        assert_eq!(again.spans[0].to_bytes(), scope.spans[0].to_bytes());
    }
}
