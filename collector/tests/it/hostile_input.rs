//! Hostile input against the collector binary: truncated protobuf, wrong wire types,
//! invalid UTF-8, deeply nested values, huge attribute counts, gzip bombs, bodies of empty
//! messages that would take far more memory decoded than their size. Each gets the right
//! answer, is counted under its reason, and the collector keeps serving.

use std::io::Write;

use crate::common::{agent_trace, request, text, value, Collector};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use prost::Message;

const LIMIT: usize = 8 * 1024 * 1024;

fn valid() -> Vec<u8> {
    request(vec![agent_trace("hostile", [0xd0; 16])]).encode_to_vec()
}

/// A value nested `depth` key-value lists deep.
fn nested(depth: usize) -> AnyValue {
    let mut value = AnyValue { value: Some(any_value::Value::StringValue("bottom".to_owned())) };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue { key: "k".to_owned(), value: Some(value), ..Default::default() }],
            })),
        };
    }
    value
}

#[tokio::test]
async fn hostile_requests_get_the_right_answer_and_the_collector_keeps_serving() {
    let collector = Collector::start(&["--max-request-bytes", &LIMIT.to_string()]).await;
    let protobuf = "application/x-protobuf";
    let json = "application/json";
    let whole = valid();

    let mut tried = 0;
    let mut malformed = 0;
    // Truncated at every tenth byte: never accepted as something else, never a crash.
    for cut in (1..whole.len()).step_by(10) {
        let status = collector.post(protobuf, None, whole[..cut].to_vec()).await.0;
        assert!(status == 400 || status == 200, "cut at {cut}: {status}");
        tried += 1;
        malformed += usize::from(status == 400);
    }
    // Field 1 (resource_spans) sent as a varint instead of a message.
    assert_eq!(collector.post(protobuf, None, vec![0x08, 0x96, 0x01]).await.0, 400);
    // A span name with bytes that are not UTF-8.
    let mut broken = request(vec![agent_trace("hostile", [0xd1; 16])]);
    broken.resource_spans[0].scope_spans[0].spans[0].name = "NAME".to_owned();
    let mut bytes = broken.encode_to_vec();
    let at = bytes.windows(4).position(|window| window == b"NAME").expect("name bytes");
    bytes[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    assert_eq!(collector.post(protobuf, None, bytes).await.0, 400, "invalid UTF-8 in protobuf");
    assert_eq!(
        collector.post(json, None, b"{\"resourceSpans\":[{\"\xff\xfe\":1}]}".to_vec()).await.0,
        400,
        "invalid UTF-8 in JSON"
    );
    // Nesting beyond the decoders' recursion limits.
    let mut deep = request(vec![agent_trace("hostile", [0xd2; 16])]);
    deep.resource_spans[0].scope_spans[0].spans[0].attributes.push(KeyValue {
        key: "deep".to_owned(),
        value: Some(nested(200)),
        ..Default::default()
    });
    assert_eq!(
        collector.post(protobuf, None, deep.encode_to_vec()).await.0,
        400,
        "protobuf nested 200 deep, past prost's limit of 100"
    );
    let deep_json = format!("{{\"resourceSpans\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(collector.post(json, None, deep_json.into_bytes()).await.0, 400, "JSON nested 10000 deep");
    // 100 000 attributes on one span (3.4 MB): legal, accepted, and counted.
    let mut wide = request(vec![agent_trace("hostile-wide", [0xd3; 16])]);
    wide.resource_spans[0].scope_spans[0].spans[0].attributes =
        (0..100_000).map(|n| text(&format!("attribute.{n}"), "value")).collect();
    assert_eq!(collector.post(protobuf, None, wide.encode_to_vec()).await.0, 200, "many attributes");
    // A gzip bomb: 64 MiB of zeros in well under the limit.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 64 * 1024 * 1024]).expect("gzip");
    let bomb = encoder.finish().expect("gzip");
    assert!(bomb.len() < LIMIT);
    assert_eq!(collector.post(protobuf, Some("gzip"), bomb).await.0, 413, "gzip bomb");
    // 2 MiB of empty spans (two bytes each) would take 330 MB decoded; in JSON, 1.5 MiB of them
    // took the collector to 290 MB resident through the JSON parser's types.
    let empty_spans = [0x12, 0x00].repeat(1 << 20);
    let scope = [&[0x12][..], &varint(empty_spans.len()), &empty_spans].concat();
    let amplified = [&[0x0a][..], &varint(scope.len()), &scope].concat();
    assert_eq!(collector.post(protobuf, None, amplified).await.0, 413, "a body of empty spans");
    let spans = vec!["{}"; 1 << 19].join(",");
    let amplified_json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    assert_eq!(collector.post(json, None, amplified_json.into_bytes()).await.0, 413, "JSON of empty spans");
    assert_eq!(collector.post("text/plain", None, whole.clone()).await.0, 415, "not a media type read");
    tried += 10;
    malformed += 5;

    assert_eq!(
        collector.post(protobuf, None, whole).await.0,
        200,
        "still serving after {tried} hostile requests"
    );
    let health = reqwest::get(format!("http://{}/healthz", collector.metrics)).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics = collector.scrape().await;
    let refused = |reason: &str| {
        value(
            &metrics,
            &format!("agentrace_requests_refused_total{{transport=\"http\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("malformed"), malformed as f64, "{metrics}");
    assert_eq!(refused("too_large"), 3.0, "the gzip bomb and the empty spans");
    assert_eq!(refused("unsupported"), 1.0);
    println!("{tried} hostile requests answered");
}

fn varint(mut value: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
    bytes
}
