//! The `/metrics` page under numbers no real call produces: fractional and huge sampling
//! weights, negative scores, token counts past any model's context, day-long and future
//! spans. Strict parsers (promtool on the classic format, prometheus_client on both) accept
//! the page, every value on it is finite, and each rejected figure is counted with its reason.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use agentrace_semconv::attr;
use agentrace_semconv::metric::invalid;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

use crate::common::{int, metric_value, request, text, unix_nanos, Collector};

/// Runs `command` with `input` on stdin; returns its exit code and output.
fn pipe(command: &mut Command, input: &str) -> (i32, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write the page");
    let output = child.wait_with_output().expect("wait");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// Scrapes `/metrics` in both formats and has them parsed strictly: promtool (classic; exit 3
/// is lint advice, 1 a parse error) and prometheus_client (both formats, which also checks
/// that every value is finite and that bucket and count values are whole and not negative).
/// Returns the number of samples.
pub async fn check_page(metrics: SocketAddr) -> usize {
    check_page_with(metrics, None).await
}

/// [`check_page`], presenting `token` when given.
pub async fn check_page_with(metrics: SocketAddr, token: Option<&str>) -> usize {
    let get = |accept: &'static str| async move {
        let client = reqwest::Client::new();
        let mut scrape = client.get(format!("http://{metrics}/metrics")).header("accept", accept);
        if let Some(token) = token {
            scrape = scrape.bearer_auth(token);
        }
        let response = scrape.send().await.expect("scrape");
        response.text().await.expect("page")
    };
    let classic = get("text/plain;version=0.0.4").await;
    let openmetrics = get("application/openmetrics-text;version=1.0.0").await;
    assert!(openmetrics.ends_with("# EOF\n"), "OpenMetrics page ends with # EOF");

    let (code, output) = pipe(Command::new("promtool").args(["check", "metrics"]), &classic);
    assert!(code == 0 || code == 3, "promtool rejects the page ({code}): {output}");
    assert!(!output.contains("error"), "promtool: {output}");

    let python = std::env::var("AGENTRACE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/check_exposition.py");
    let mut counts = Vec::new();
    for (format, page) in [("openmetrics", &openmetrics), ("classic", &classic)] {
        let (code, output) = pipe(Command::new(&python).args([script, format]), page);
        assert_eq!(code, 0, "prometheus_client's {format} parser: {output}");
        counts.push(output.trim().parse::<usize>().expect("sample count"));
    }
    counts[0]
}

fn double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(value)) }),
        ..Default::default()
    }
}

/// An LLM call of `seconds` ending at `end` (Unix nanoseconds), with extra attributes.
fn call(id: u8, end: u64, seconds: u64, extra: Vec<KeyValue>) -> Span {
    // The extra attributes come first: where a key repeats, the first is read.
    let mut attributes = extra;
    attributes.extend([
        text(attr::GEN_AI_OPERATION_NAME, "chat"),
        text(attr::GEN_AI_PROVIDER_NAME, "openai"),
        text(attr::GEN_AI_REQUEST_MODEL, "gpt-4o"),
        text(attr::GEN_AI_AGENT_NAME, "numbers"),
        int(attr::GEN_AI_USAGE_INPUT_TOKENS, 10),
        int(attr::GEN_AI_USAGE_OUTPUT_TOKENS, 5),
    ]);
    Span {
        trace_id: vec![0x5a; 16],
        span_id: vec![id, 0, 0, 0, 0, 0, 0, 1],
        name: "chat gpt-4o".to_owned(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: end - seconds * 1_000_000_000,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

/// Every figure the hardening sweep found to break the page, in one request.
fn impossible_spans() -> Vec<Span> {
    let now = unix_nanos();
    let mut fractional = call(1, now, 1, vec![]);
    fractional.trace_state = "ot=th:5".to_owned(); // weight 1.4545…
    let mut negative = call(2, now, 1, vec![]);
    negative.events.push(span::Event {
        name: attr::GEN_AI_EVALUATION_RESULT_EVENT.to_owned(),
        time_unix_nano: now,
        attributes: vec![
            text(attr::GEN_AI_EVALUATION_NAME, "relevance"),
            double(attr::GEN_AI_EVALUATION_SCORE_VALUE, -3.5),
        ],
        ..Default::default()
    });
    vec![
        fractional,
        negative,
        call(3, now, 1, vec![double(attr::SAMPLING_ADJUSTED_COUNT, 1e308)]),
        call(4, now, 1, vec![double(attr::SAMPLING_ADJUSTED_COUNT, 1e308)]),
        call(5, now, 1, vec![int(attr::GEN_AI_USAGE_INPUT_TOKENS, i64::MAX)]),
        call(6, now, 1, vec![double(attr::GEN_AI_USAGE_OUTPUT_TOKENS, 1.8446744073709552e19)]),
        call(7, 18_000_000_000_000_000_000, 18_000_000_000, vec![]), // 1.8·10¹⁰ s long
        call(8, now + 3_600_000_000_000, 1, vec![]),                 // ends an hour from now
        call(9, now, 1, vec![double(attr::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, 30.0)]),
    ]
}

#[tokio::test]
async fn impossible_numbers_are_counted_and_the_page_stays_finite_and_strictly_valid() {
    let collector = Collector::start(&[]).await;
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let spans = impossible_spans();
    let sent = spans.len();
    let resource = ResourceSpans {
        resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![text(attr::SERVICE_NAME, "numbers")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    };
    client.export(request(vec![resource])).await.expect("accepted: the spans are forwarded as they are");
    let reasons = [
        (invalid::WEIGHT_CLAMPED, 2.0),
        (invalid::TOKENS_OVER_CEILING, 2.0),
        (invalid::DURATION_OVER_A_DAY, 1.0),
        (invalid::FUTURE_TIMESTAMP, 1.0),
        (invalid::FIRST_TOKEN_AFTER_END, 1.0),
    ];
    let counted = |metrics: &str| -> Vec<(&str, f64)> {
        let series = |reason: &str| format!("agentrace_spans_invalid_total{{reason=\"{reason}\"}}");
        reasons
            .iter()
            .map(|(reason, _)| (*reason, metric_value(metrics, &series(reason)).unwrap_or(0.0)))
            .collect()
    };
    let metrics = crate::common::eventually("all calls counted", async || {
        let metrics = collector.scrape().await;
        let received = metric_value(&metrics, "agentrace_spans_received_total{transport=\"grpc\"}")?;
        (received == sent as f64 && counted(&metrics).iter().map(|(_, n)| n).sum::<f64>() >= 7.0)
            .then_some(metrics)
    })
    .await;
    assert_eq!(counted(&metrics), reasons, "{metrics}");
    let samples = check_page(collector.metrics).await;
    assert!(samples > 100, "{samples} samples");
    collector.stop().await;
}

#[tokio::test]
async fn every_fixture_s_and_fuzz_seed_s_page_is_strictly_valid() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let collector = Collector::start(&["--graph-wait-secs", "1", "--attribution-wait-secs", "1"]).await;
    let mut sent = 0;
    for directory in ["dialects", "agents"] {
        for entry in std::fs::read_dir(root.join(directory)).expect("fixtures") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
            if !name.ends_with(".json") || name.ends_with(".truth.json") {
                continue;
            }
            let body = std::fs::read(&path).expect("fixture");
            assert_eq!(collector.post("application/json", None, body).await.0, 200, "{name}");
            sent += 1;
        }
    }
    assert!(sent >= 14, "{sent} fixtures");
    // And the fuzz targets' seed corpora, whatever each gets answered.
    let corpus = root.join("../../../fuzz/corpus");
    for (directory, content_type) in
        [("decode_json", "application/json"), ("decode_protobuf", "application/x-protobuf")]
    {
        for entry in std::fs::read_dir(corpus.join(directory)).expect("corpus") {
            let body = std::fs::read(entry.expect("entry").path()).expect("seed");
            let status = collector.post(content_type, None, body).await.0;
            assert!(matches!(status, 200 | 400), "{directory}: {status}");
        }
    }
    // After the agent-graph window closed, so the invocation roll-ups are on the page too.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let samples = check_page(collector.metrics).await;
    assert!(samples > 1_000, "{samples} samples");
    collector.stop().await;
}
