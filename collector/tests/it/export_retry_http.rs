//! The OTLP/HTTP exporter (`--traces-protocol http/protobuf`) against a fault-injecting
//! endpoint: 429, 502, 503 and 504 are retried (after Retry-After, in seconds or as an HTTP
//! date), 413 splits the batch, every other error is final, partial success is not retried.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::ExportOutcome;
use crate::common::{value, EXPORTED, RETRIES};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// Retry-After as seconds, or as the HTTP date this far from when the answer is sent.
#[derive(Clone, Debug)]
enum RetryAfter {
    Seconds(u64),
    DateIn(Duration),
}

/// (status, Retry-After, body) per scripted answer; success once the script runs out.
type Answer = (u16, Option<RetryAfter>, Vec<u8>);
type Script = Arc<Mutex<VecDeque<Answer>>>;

#[derive(Clone, Default)]
struct FaultSink {
    script: Script,
    calls: Arc<Mutex<Vec<(Instant, usize)>>>,
}

async fn export(
    axum::extract::State(sink): axum::extract::State<FaultSink>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    assert_eq!(
        headers.get("content-type").map(HeaderValue::as_bytes),
        Some(b"application/x-protobuf".as_slice())
    );
    let request = ExportTraceServiceRequest::decode(body).expect("protobuf request");
    sink.calls.lock().expect("calls").push((
        Instant::now(),
        request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum::<usize>(),
    ));
    let (status, retry_after, body) = sink.script.lock().expect("script").pop_front().unwrap_or((
        200,
        None,
        ExportTraceServiceResponse::default().encode_to_vec(),
    ));
    let mut response_headers = HeaderMap::new();
    let retry_after = retry_after.map(|retry_after| match retry_after {
        RetryAfter::Seconds(seconds) => seconds.to_string(),
        RetryAfter::DateIn(delay) => httpdate::fmt_http_date(std::time::SystemTime::now() + delay),
    });
    if let Some(retry_after) = retry_after {
        response_headers.insert("retry-after", HeaderValue::from_str(&retry_after).expect("header"));
    }
    (StatusCode::from_u16(status).expect("status"), response_headers, body)
}

impl FaultSink {
    async fn start(script: Vec<Answer>) -> (Self, std::net::SocketAddr) {
        let sink = Self { script: Arc::new(Mutex::new(script.into())), ..Self::default() };
        let app =
            axum::Router::new().route("/v1/traces", axum::routing::post(export)).with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sink, address)
    }

    fn calls(&self) -> Vec<(Instant, usize)> {
        self.calls.lock().expect("calls").clone()
    }
}

fn fail(status: u16) -> Answer {
    (status, None, b"injected".to_vec())
}

async fn run_case(script: Vec<Answer>, expected_calls: usize) -> ExportOutcome {
    let (sink, address) = FaultSink::start(script).await;
    let endpoint = format!("http://{address}");
    crate::common::export_once(
        &[
            "--traces-endpoint",
            &endpoint,
            "--traces-protocol",
            "http/protobuf",
            "--export-first-backoff-secs",
            "0.02",
        ],
        expected_calls,
        || sink.calls(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_http_answers_are_retried_and_others_are_not() {
    for status in [429, 502, 503, 504] {
        let outcome = run_case(vec![fail(status), fail(status)], 3).await;
        assert_eq!(outcome.calls.len(), 3, "{status}: two failures, then success");
        assert_eq!(
            (value(&outcome.metrics, EXPORTED), value(&outcome.metrics, RETRIES)),
            (4.0, 2.0),
            "{status}"
        );
    }
    for status in [400, 401, 403, 404, 405, 500] {
        let outcome = run_case(vec![fail(status)], 1).await;
        assert_eq!(outcome.calls.len(), 1, "{status}: no retry");
        let dropped = value(&outcome.metrics, "agentrace_spans_dropped_total{reason=\"export_refused\"}");
        assert_eq!((dropped, value(&outcome.metrics, RETRIES)), (4.0, 0.0), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    // An HTTP date has whole seconds: two seconds ahead is at least one second away.
    let cases = [
        (RetryAfter::Seconds(1), Duration::from_secs(1)),
        (RetryAfter::DateIn(Duration::from_secs(2)), Duration::from_secs(1)),
    ];
    for (retry_after, at_least) in cases {
        let outcome = run_case(vec![(503, Some(retry_after.clone()), Vec::new())], 2).await;
        assert_eq!(outcome.calls.len(), 2, "{retry_after:?}");
        let waited = outcome.calls[1].0 - outcome.calls[0].0;
        assert!(waited >= at_least, "Retry-After {retry_after:?}: waited {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_splits_and_partial_success_is_not_retried() {
    let outcome = run_case(vec![fail(413), fail(413)], 5).await;
    let sizes: Vec<usize> = outcome.calls.iter().map(|(_, spans)| *spans).collect();
    assert_eq!(sizes, vec![4, 2, 1, 1, 2]);
    assert_eq!(value(&outcome.metrics, EXPORTED), 4.0);

    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "too old".to_owned(),
        }),
    };
    let outcome = run_case(vec![(200, None, partial.encode_to_vec())], 1).await;
    assert_eq!(outcome.calls.len(), 1);
    assert_eq!(value(&outcome.metrics, EXPORTED), 3.0);
    assert_eq!(
        value(&outcome.metrics, "agentrace_spans_dropped_total{reason=\"rejected_by_endpoint\"}"),
        1.0
    );
}
