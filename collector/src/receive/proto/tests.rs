use bytes::{BufMut, Bytes};
use prost::Message;

use super::*;
use crate::receive::decode;
use crate::wire::{ArrayValue, KeyValue, KeyValueList, Span};

/// Both readers take the body or both refuse it, and what they take encodes to the same bytes
/// (so the same fields, and a NaN equals itself); the walk that counts a refused request's spans
/// counts as many as they take.
fn agree(body: &[u8]) -> bool {
    let body = Bytes::copy_from_slice(body);
    match (request(&body), decode::reference(body.clone())) {
        (Ok(ours), Ok(reference)) => {
            assert_eq!(ours.encode_to_vec(), reference.encode_to_vec(), "decoded differently: {body:?}");
            let spans = Some(ours.span_count() as u64);
            assert_eq!(decode::count_spans(&body), spans, "counted differently: {body:?}");
            true
        }
        (Err(_), Err(_)) => false,
        (ours, reference) => panic!("disagree on {body:?}: {ours:?} against {:?}", reference.err()),
    }
}

fn fixtures() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut bodies = Vec::new();
    for folder in ["dialects", "agents"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(folder))
            .expect("fixture folder")
            .map(|entry| entry.expect("fixture entry").path())
            .filter(|path| {
                let name = path.to_string_lossy();
                name.ends_with(".json") && !name.ends_with(".truth.json")
            })
            .collect();
        paths.sort();
        for path in paths {
            let json = std::fs::read(&path).expect("fixture");
            let decoded = decode::json(&json).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            bodies.push(decoded.encoded.to_vec());
        }
    }
    assert!(bodies.len() >= 16, "found {} fixtures", bodies.len());
    bodies
}

/// Every field of every message, some twice, with values at their types' edges.
fn every_field() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Standard;
    let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}],
        "droppedAttributesCount":3},"schemaUrl":"https://s",
        "scopeSpans":[{"scope":{"name":"lib","version":"1.0","attributes":[{"key":"k","value":{"boolValue":true}}],
        "droppedAttributesCount":1},"schemaUrl":"https://t","spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","traceState":"a=b","name":"chat m","kind":3,
        "flags":257,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"18446744073709551615",
        "attributes":[{"key":"i","value":{"intValue":"-9223372036854775808"}},{"key":"d","value":{"doubleValue":-0.0}},
        {"key":"b","value":{"bytesValue":"AAEC"}},{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"},
        {"kvlistValue":{"values":[{"key":"n","value":{"intValue":"7"}}]}}]}}},{"key":"e"},{"key":"\u00e9","value":{}}],
        "droppedAttributesCount":4294967295,"events":[{"timeUnixNano":"1","name":"ev",
        "attributes":[{"key":"x","value":{"stringValue":"y"}}],"droppedAttributesCount":2}],"droppedEventsCount":5,
        "links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b170","traceState":"c=d",
        "attributes":[{"key":"l","value":{"doubleValue":1.5}}],"droppedAttributesCount":6,"flags":1}],
        "droppedLinksCount":7,"status":{"code":2,"message":"boom"}}]}]}]}"#;
    let standard: Standard = serde_json::from_slice(json).expect("valid OTLP/JSON");
    standard.encode_to_vec()
}

#[test]
fn every_fixture_and_every_field_decode_as_prost_decodes_them() {
    for body in fixtures().iter().chain([&every_field()]) {
        assert!(agree(body), "refused");
    }
}

/// A small deterministic generator, so that a failure names a case that comes back.
struct Noise(u64);

impl Noise {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below.max(1) as u64) as usize
    }
}

#[test]
fn damaged_bodies_are_taken_or_refused_as_prost_takes_or_refuses_them() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let (mut taken, mut refused) = (0, 0);
    for body in fixtures().iter().chain([&every_field()]) {
        for _ in 0..400 {
            let mut damaged = body.clone();
            for _ in 0..=noise.next(3) {
                let at = noise.next(damaged.len());
                match noise.next(5) {
                    0 => damaged[at] = noise.next(256) as u8,
                    1 => damaged[at] ^= 1 << noise.next(8),
                    2 => damaged.truncate(at),
                    3 => {
                        let end = (at + noise.next(16)).min(damaged.len());
                        damaged.drain(at..end);
                    }
                    _ => {
                        let end = (at + noise.next(32)).min(damaged.len());
                        let copy = damaged[at..end].to_vec();
                        damaged.splice(at..at, copy);
                    }
                }
                if damaged.is_empty() {
                    break;
                }
            }
            if agree(&damaged) {
                taken += 1;
            } else {
                refused += 1;
            }
        }
    }
    // Both outcomes are exercised, not just one.
    assert!(taken > 100 && refused > 100, "taken {taken}, refused {refused}");
}

/// A request whose one span has one attribute holding `depth` arrays, one inside the other.
fn nested_arrays(depth: usize) -> Vec<u8> {
    use crate::wire::{ResourceSpans, ScopeSpans};
    let mut value = AnyValue { value: Some(any_value::Value::StringValue(Bytes::from_static(b"core"))) };
    for _ in 0..depth {
        value = AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![value] })) };
    }
    let attribute = KeyValue { key: Bytes::from_static(b"deep"), value: Some(value) };
    let span = Span { attributes: vec![attribute], ..Default::default() };
    let scope_spans = ScopeSpans { spans: vec![span], ..Default::default() };
    let resource_spans = ResourceSpans { scope_spans: vec![scope_spans], ..Default::default() };
    ExportTraceServiceRequest { resource_spans: vec![resource_spans] }.encode_to_vec()
}

#[test]
fn nesting_stops_where_prost_stops_it() {
    let outcomes: Vec<bool> = (40..=52).map(|depth| agree(&nested_arrays(depth))).collect();
    assert!(outcomes.first() == Some(&true) && outcomes.last() == Some(&false), "{outcomes:?}");
}

/// A request of one span named `s`, with `extra` fields after its name.
fn span_with(extra: &[u8]) -> Vec<u8> {
    let mut span = Vec::new();
    prost::encoding::bytes::encode(5, &b"s".to_vec(), &mut span);
    span.extend_from_slice(extra);
    let mut scope_spans = Vec::new();
    prost::encoding::bytes::encode(2, &span, &mut scope_spans);
    let mut resource_spans = Vec::new();
    prost::encoding::bytes::encode(2, &scope_spans, &mut resource_spans);
    let mut request = Vec::new();
    prost::encoding::bytes::encode(1, &resource_spans, &mut request);
    request
}

/// Field `tag` holding the message that `message` writes.
fn message(tag: u32, message: &dyn Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut inner = Vec::new();
    message(&mut inner);
    let mut field = Vec::new();
    prost::encoding::bytes::encode(tag, &inner, &mut field);
    field
}

#[test]
fn unknown_fields_groups_and_wrong_wire_types() {
    use prost::encoding::{encode_key, WireType};
    let group = |open: u32, close: u32| {
        let mut bytes = Vec::new();
        encode_key(open, WireType::StartGroup, &mut bytes);
        prost::encoding::uint64::encode(1, &300, &mut bytes);
        encode_key(close, WireType::EndGroup, &mut bytes);
        bytes
    };
    let unknown = |wire: WireType, value: &[u8]| {
        let mut field = Vec::new();
        encode_key(20, wire, &mut field);
        field.extend_from_slice(value);
        field
    };
    let mut fixed = Vec::new();
    fixed.put_u32_le(7);
    let cases: [(&str, Vec<u8>, bool); 9] = [
        ("an unknown varint", unknown(WireType::Varint, &[0x96, 0x01]), true),
        ("an unknown fixed32", unknown(WireType::ThirtyTwoBit, &fixed), true),
        ("a group", group(21, 21), true),
        ("a group closed under another number", group(21, 22), false),
        ("a name as a varint", vec![5 << 3, 1], false),
        ("a start time as a varint", vec![7 << 3, 1], false),
        ("a ten-byte varint", unknown(WireType::Varint, &[[0xff; 9].as_slice(), &[0x01]].concat()), true),
        (
            "a ten-byte varint past 64 bits",
            unknown(WireType::Varint, &[[0xff; 9].as_slice(), &[0x02]].concat()),
            false,
        ),
        ("an eleven-byte varint", unknown(WireType::Varint, &[[0xff; 10].as_slice(), &[0]].concat()), false),
    ];
    for (case, extra, expected) in cases {
        assert_eq!(agree(&span_with(&extra)), expected, "{case}");
    }
}

#[test]
fn fields_met_twice_are_merged_or_replaced_as_prost_does() {
    // A status twice (merged), and an attribute whose value is a list twice (merged too).
    let statuses = [
        message(15, &|out| prost::encoding::int32::encode(3, &1, out)),
        message(15, &|out| prost::encoding::bytes::encode(2, &b"m".to_vec(), out)),
    ]
    .concat();
    let list = |item: &'static [u8]| {
        let value = AnyValue { value: Some(any_value::Value::StringValue(Bytes::from_static(item))) };
        message(2, &move |out| {
            let array = ArrayValue { values: vec![value.clone()] };
            prost::encoding::message::encode(5, &array, out);
        })
    };
    let attribute = message(9, &|out| {
        prost::encoding::bytes::encode(1, &b"k".to_vec(), out);
        out.extend_from_slice(&list(b"x"));
        out.extend_from_slice(&list(b"y"));
    });
    // A map whose key is not UTF-8, then (or not) a string in the same value, which replaces it.
    let map_then = |replaced: bool| {
        message(9, &move |out| {
            prost::encoding::bytes::encode(1, &b"k".to_vec(), out);
            out.extend_from_slice(&message(2, &|value| {
                let entry = KeyValue { key: Bytes::from_static(b"\xff"), ..Default::default() };
                prost::encoding::message::encode(6, &KeyValueList { values: vec![entry] }, value);
                if replaced {
                    prost::encoding::bytes::encode(1, &b"ok".to_vec(), value);
                }
            }));
        })
    };
    // Strings met again, empty and not, in turn: the last one read stays.
    let key_thrice = message(9, &|out| {
        for key in [&b"a"[..], b"", b"b"] {
            prost::encoding::bytes::encode(1, &key.to_vec(), out);
        }
    });
    let names = [&b""[..], b"n", b""].map(|name| {
        let mut out = Vec::new();
        prost::encoding::bytes::encode(5, &name.to_vec(), &mut out);
        out
    });
    let cases: [(&str, Vec<u8>, bool); 7] = [
        ("a name twice", message(5, &|_| {}), true),
        ("a key three times", key_thrice, true),
        ("names empty and not", names.concat(), true),
        ("a status twice", statuses, true),
        ("a list value twice", attribute, true),
        ("a map with a key that is not UTF-8", map_then(false), false),
        ("that map replaced by a string", map_then(true), true),
    ];
    for (case, extra, expected) in cases {
        assert_eq!(agree(&span_with(&extra)), expected, "{case}");
    }
}

#[test]
fn vectors_are_taken_at_their_size() {
    let body = Bytes::from(fixtures().swap_remove(0));
    let decoded = request(&body).expect("decodes");
    for scope_spans in decoded.resource_spans.iter().flat_map(|resource| &resource.scope_spans) {
        assert_eq!(scope_spans.spans.capacity(), scope_spans.spans.len());
        for span in &scope_spans.spans {
            assert_eq!(span.attributes.capacity(), span.attributes.len());
        }
    }
}

/// A request of `count` copies of `span` (its encoded bytes) in one scope.
fn spans_of(span: &[u8], count: usize) -> Bytes {
    let mut scope = Vec::new();
    for _ in 0..count {
        scope.put_u8(0x12);
        prost::encoding::encode_varint(span.len() as u64, &mut scope);
        scope.extend_from_slice(span);
    }
    let mut body = vec![0x0a];
    let mut resource = vec![0x12];
    prost::encoding::encode_varint(scope.len() as u64, &mut resource);
    resource.extend_from_slice(&scope);
    prost::encoding::encode_varint(resource.len() as u64, &mut body);
    body.extend_from_slice(&resource);
    Bytes::from(body)
}

#[test]
fn nearly_empty_messages_are_refused_past_sixteen_decoded_bytes_a_byte() {
    // Empty spans: 2 bytes each, 312 decoded. prost takes them; the reader refuses once they
    // pass the floor.
    let empty = spans_of(&[], 100_000);
    assert!(decode::reference(empty.clone()).is_ok());
    assert_eq!(request(&empty).err(), Some(Fault::Amplified));
    // Under the floor, they are taken as prost takes them.
    assert!(agree(&spans_of(&[], 10_000)));
    // Spans with only their ids (30 bytes each) take about 10 decoded bytes a byte: taken.
    let ids =
        Span { trace_id: Bytes::from(vec![1; 16]), span_id: Bytes::from(vec![2; 8]), ..Span::default() };
    assert!(agree(&spans_of(&ids.encode_to_vec(), 100_000)));
    // One span with 200 000 empty attributes (80 bytes decoded for 2) is refused; with
    // one-letter keys and small integers (80 for 9), taken.
    let attributes = |attribute: KeyValue| {
        let span = Span { attributes: vec![attribute; 200_000], ..ids.clone() };
        spans_of(&span.encode_to_vec(), 1)
    };
    assert_eq!(request(&attributes(KeyValue::default())).err(), Some(Fault::Amplified));
    let small = KeyValue {
        key: Bytes::from_static(b"k"),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(7)) }),
    };
    assert!(agree(&attributes(small)));
}

#[test]
fn a_span_s_lists_are_taken_from_the_budget_together() {
    // 60 000 empty attributes, events and links: each list alone is under the 10 MiB a small
    // body may take (4.8, 4.3 and 7.7 MB), the three together are not.
    let span = Span {
        attributes: vec![KeyValue::default(); 60_000],
        events: vec![crate::wire::span::Event::default(); 60_000],
        links: vec![crate::wire::span::Link::default(); 60_000],
        ..Span::default()
    };
    let body = spans_of(&span.encode_to_vec(), 1);
    assert!(decode::reference(body.clone()).is_ok());
    assert_eq!(request(&body).err(), Some(Fault::Amplified));
    let fewer = Span { links: Vec::new(), ..span };
    assert!(agree(&spans_of(&fewer.encode_to_vec(), 1)));
}
