//! What a batch holds: decoded forwarding views from the memory queue, or the encoded bytes
//! the persistent queue stored, which go out as they are.

use prost::encoding::message;

use crate::wire::raw;

/// A batch's spans: from memory, the requests' forwarding views, encoded when sent; from disk,
/// the stored bytes, sent as they are.
#[derive(Clone, Debug)]
pub enum Payload {
    Decoded(Vec<raw::ResourceSpans>),
    /// An encoded `ExportTraceServiceRequest`, in pieces that are each one too (the stored
    /// requests), sent one after the other.
    Encoded(Vec<bytes::Bytes>),
}

// `ExportTraceServiceRequest.resource_spans` is field 1, its only field.
const RESOURCE_SPANS: u32 = 1;

impl Payload {
    /// The request's bytes, encoding them if they are not yet.
    pub fn encoded(&self) -> bytes::Bytes {
        match self {
            Self::Decoded(_) => {
                let mut encoded = Vec::with_capacity(self.encoded_len());
                self.encode_into(&mut encoded);
                encoded.into()
            }
            Self::Encoded(pieces) => match pieces.as_slice() {
                [one] => one.clone(),
                _ => pieces.concat().into(),
            },
        }
    }

    /// The length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Decoded(resource_spans) => message::encoded_len_repeated(RESOURCE_SPANS, resource_spans),
            Self::Encoded(pieces) => pieces.iter().map(bytes::Bytes::len).sum(),
        }
    }

    /// Writes the encoded request into `buf` (a transport's own buffer, so that a batch is not
    /// encoded into one buffer to be copied into another).
    pub fn encode_into(&self, buf: &mut impl bytes::BufMut) {
        match self {
            Self::Decoded(resource_spans) => message::encode_repeated(RESOURCE_SPANS, resource_spans, buf),
            Self::Encoded(pieces) => {
                for piece in pieces {
                    buf.put_slice(piece);
                }
            }
        }
    }

    /// The resource spans, decoding them if they are encoded (to split or route them again;
    /// the spans themselves stay encoded). `None` for bytes that do not decode.
    pub fn into_resource_spans(self) -> Option<Vec<raw::ResourceSpans>> {
        match self {
            Self::Decoded(resource_spans) => Some(resource_spans),
            Self::Encoded(pieces) => {
                let mut resource_spans = Vec::new();
                for piece in pieces {
                    let request = <raw::ExportTraceServiceRequest as prost::Message>::decode(piece).ok()?;
                    resource_spans.extend(request.resource_spans);
                }
                Some(resource_spans)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::wire::Span;

    fn resource_spans(spans: u8) -> Vec<raw::ResourceSpans> {
        let span = |n: u8| {
            bytes::Bytes::from(Span { span_id: vec![n; 8].into(), ..Default::default() }.encode_to_vec())
        };
        let scope =
            raw::ScopeSpans { spans: (1..=spans).map(span).map(Into::into).collect(), ..Default::default() };
        vec![raw::ResourceSpans { scope_spans: vec![scope], ..Default::default() }]
    }

    #[test]
    fn decoded_and_encoded_payloads_are_the_same_request() {
        let request = raw::ExportTraceServiceRequest { resource_spans: resource_spans(3) };
        let decoded = Payload::Decoded(resource_spans(3));
        assert_eq!(decoded.encoded(), request.encode_to_vec(), "encoded as the request itself is");
        let encoded = Payload::Encoded(vec![request.encode_to_vec().into()]);
        assert_eq!(encoded.encoded(), request.encode_to_vec(), "sent as stored");
        let first = raw::ExportTraceServiceRequest { resource_spans: resource_spans(1) }.encode_to_vec();
        let rest = raw::ExportTraceServiceRequest { resource_spans: resource_spans(2) }.encode_to_vec();
        let mut both = raw::ExportTraceServiceRequest { resource_spans: resource_spans(1) };
        both.resource_spans.extend(resource_spans(2));
        let in_pieces = Payload::Encoded(vec![first.into(), rest.into()]);
        assert_eq!(in_pieces.encoded(), both.encode_to_vec(), "pieces one after the other");
        assert_eq!(in_pieces.encoded_len(), both.encoded_len());
        assert_eq!(in_pieces.clone().into_resource_spans(), Some(both.resource_spans));
        for payload in [&decoded, &encoded] {
            let mut buffer = bytes::BytesMut::from(&b"header"[..]);
            payload.encode_into(&mut buffer);
            assert_eq!(&buffer[6..], request.encode_to_vec(), "written after what the buffer holds");
            assert_eq!(payload.encoded_len(), request.encoded_len());
        }
        assert_eq!(
            encoded.into_resource_spans(),
            Some(request.resource_spans),
            "decoded to split or route again"
        );
        assert_eq!(Payload::Encoded(vec![vec![0x0a, 0xff].into()]).into_resource_spans(), None);
    }
}
