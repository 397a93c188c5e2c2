//! What an OTLP/JSON body would take decoded, estimated from its text before it is parsed, so
//! that a body of nearly empty objects is refused before it is built (16 MiB of `{}` in a span
//! list took 3.6 GB). Every object, and every list (the parser reads a message from a list of
//! its fields too), is charged what the message it can be takes in memory: a span, a log record
//! and the lists that hold them by the list they are in (`spans`, `logRecords`, …), the others
//! at [`OTHER_OBJECT`]. A vector that grows may hold up to twice what it uses; strings cost at
//! most their own length decoded. Neither is charged.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

/// An object that is not an element of one of the lists below: a resource, a scope, a status,
/// a value, or an element of another list (a value's list, for one): twice the size of a
/// key-value pair, the largest of them.
const OTHER_OBJECT: usize = 2 * std::mem::size_of::<KeyValue>();

/// The deepest nesting the JSON parser takes; deeper, the parser refuses the body.
const MAX_DEPTH: usize = 128;

/// The bytes the elements of a list under `key` take decoded, each. A key written with escapes
/// (`"sp\u0061ns"` is `spans` to the parser) is charged as the largest message, a span.
fn element_size(key: &[u8]) -> usize {
    use std::mem::size_of;
    if key.contains(&b'\\') {
        return size_of::<Span>().max(size_of::<LogRecord>());
    }
    match key {
        b"spans" => size_of::<Span>(),
        b"events" => size_of::<span::Event>(),
        b"links" => size_of::<span::Link>(),
        b"scopeSpans" | b"scope_spans" => size_of::<ScopeSpans>(),
        b"resourceSpans" | b"resource_spans" => size_of::<ResourceSpans>(),
        b"logRecords" | b"log_records" => size_of::<LogRecord>(),
        b"scopeLogs" | b"scope_logs" => size_of::<ScopeLogs>(),
        b"resourceLogs" | b"resource_logs" => size_of::<ResourceLogs>(),
        _ => OTHER_OBJECT,
    }
}

/// The estimate for `body`: the objects' sizes added up. Stops, with what it has, where the
/// text stops being JSON the parser would take (nesting past its limit); the parser then
/// refuses it.
pub(crate) fn decoded_bytes(body: &[u8]) -> usize {
    // For each open list, what its objects cost; `None` for an open object.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut total = 0usize;
    // The last string read, and whether a `:` followed it (it was a key).
    let (mut last_string, mut key): (&[u8], &[u8]) = (&[], &[]);
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at += 1;
        match byte {
            b'"' => {
                let start = at;
                while let Some(&inner) = body.get(at) {
                    at += 1;
                    match inner {
                        b'\\' => at += 1,
                        b'"' => break,
                        _ => {}
                    }
                }
                last_string = body.get(start..at.saturating_sub(1)).unwrap_or_default();
            }
            b':' => key = last_string,
            b'[' | b'{' => {
                if open.len() >= MAX_DEPTH {
                    break;
                }
                // A list is charged as an object is: the parser also reads a message from a
                // list of its fields in order, so `[]` in a list of spans is an empty span.
                total = total.saturating_add(open.last().copied().flatten().unwrap_or(OTHER_OBJECT));
                open.push((byte == b'[').then(|| element_size(key)));
                key = &[];
            }
            b']' | b'}' => {
                open.pop();
            }
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_charged_as_spans_and_strings_not_at_all() {
        let span = std::mem::size_of::<Span>();
        let list = std::mem::size_of::<ResourceSpans>() + std::mem::size_of::<ScopeSpans>();
        // The request, its three lists, a resource's spans, a scope's spans, three spans.
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{},{"name":"a{[\"b"},[]]}]}]}"#;
        assert_eq!(decoded_bytes(body), 4 * OTHER_OBJECT + list + 3 * span);
        let attributes = br#"{"attributes":[{"key":"k","value":{"intValue":"7"}}]}"#;
        assert_eq!(decoded_bytes(attributes), 4 * OTHER_OBJECT);
        // A key is the string before a colon, not any string before the list.
        let not_a_key = br#"{"name":"spans","x":[{}]}"#;
        assert_eq!(decoded_bytes(not_a_key), 3 * OTHER_OBJECT);
        // The parser reads an escaped key as the name it spells.
        let escaped = br#"{"sp\u0061ns":[{}]}"#;
        assert_eq!(decoded_bytes(escaped), 2 * OTHER_OBJECT + span);
    }

    #[test]
    fn text_that_is_not_json_ends_the_estimate_without_a_fault() {
        for body in [&b"]]]}}}"[..], b"\"unterminated", b"{\"a\\", b"", &[b'['; 1000]] {
            let _ = decoded_bytes(body);
        }
        assert_eq!(decoded_bytes(&[b'{'; 1000]), MAX_DEPTH * OTHER_OBJECT);
        // Lists inside lists are each charged as an element of the one they are in.
        assert_eq!(decoded_bytes(&[b'['; 1000]), MAX_DEPTH * OTHER_OBJECT);
    }
}
