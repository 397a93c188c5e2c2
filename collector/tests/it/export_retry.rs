//! The exporter against a fault-injecting OTLP/gRPC endpoint, one row per answer: which
//! answers are retried, which are not, that RetryInfo is honoured, that partial success is
//! not retried, and that a batch the endpoint calls too large is split until it fits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::ExportOutcome;
use crate::common::{value, EXPORTED, RETRIES};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

type Answer = Result<ExportTraceServiceResponse, tonic::Status>;

/// Answers each export with the next scripted answer, then with success; records every call.
#[derive(Clone, Default)]
struct FaultSink {
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// (when, spans) per call.
    calls: Arc<Mutex<Vec<(Instant, usize)>>>,
}

#[tonic::async_trait]
impl TraceService for FaultSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum::<usize>();
        self.calls.lock().expect("calls").push((Instant::now(), spans));
        let answer = self
            .script
            .lock()
            .expect("script")
            .pop_front()
            .unwrap_or_else(|| Ok(ExportTraceServiceResponse::default()));
        answer.map(tonic::Response::new)
    }
}

impl FaultSink {
    async fn start(script: Vec<Answer>) -> (Self, std::net::SocketAddr) {
        let sink = Self { script: Arc::new(Mutex::new(script.into())), ..Self::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (sink, address)
    }

    fn calls(&self) -> Vec<(Instant, usize)> {
        self.calls.lock().expect("calls").clone()
    }
}

fn status(code: Code) -> Answer {
    Err(tonic::Status::new(code, "injected"))
}

fn with_retry_info(code: Code, delay: Duration) -> Answer {
    Err(tonic::Status::with_error_details(code, "injected", ErrorDetails::with_retry_info(Some(delay))))
}

fn too_large() -> Answer {
    Err(tonic::Status::new(
        Code::ResourceExhausted,
        "grpc: received message larger than max (4194305 vs. 4194304)",
    ))
}

/// What the collector did with one 4-span request against a scripted endpoint.
async fn run_case(script: Vec<Answer>, expected_calls: usize) -> ExportOutcome {
    let (sink, address) = FaultSink::start(script).await;
    let endpoint = format!("http://{address}");
    crate::common::export_once(
        &[
            "--traces-endpoint",
            &endpoint,
            "--export-first-backoff-secs",
            "0.02",
            "--export-max-retry-secs",
            "20",
        ],
        expected_calls,
        || sink.calls(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_answers_are_retried_until_accepted() {
    for code in [
        Code::Unavailable,
        Code::DeadlineExceeded,
        Code::Aborted,
        Code::Cancelled,
        Code::OutOfRange,
        Code::DataLoss,
    ] {
        let outcome = run_case(vec![status(code), status(code)], 3).await;
        assert_eq!(outcome.calls.len(), 3, "{code:?}: two failures, then success");
        assert_eq!(
            (value(&outcome.metrics, EXPORTED), value(&outcome.metrics, RETRIES)),
            (4.0, 2.0),
            "{code:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retryable_answers_are_not_retried_and_the_batch_is_counted_dropped() {
    let codes = [
        Code::InvalidArgument,
        Code::FailedPrecondition,
        Code::ResourceExhausted,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::Unimplemented,
        Code::Internal,
        Code::Unknown,
    ];
    for code in codes {
        let outcome = run_case(vec![status(code)], 1).await;
        assert_eq!(outcome.calls.len(), 1, "{code:?}: no retry");
        let dropped = value(&outcome.metrics, "agentrace_spans_dropped_total{reason=\"export_refused\"}");
        assert_eq!((dropped, value(&outcome.metrics, RETRIES)), (4.0, 0.0), "{code:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_info_is_honoured() {
    let delay = Duration::from_millis(1_200);
    for code in [Code::Unavailable, Code::ResourceExhausted] {
        let outcome = run_case(vec![with_retry_info(code, delay)], 2).await;
        assert_eq!(outcome.calls.len(), 2, "{code:?}: retried once");
        let waited = outcome.calls[1].0 - outcome.calls[0].0;
        assert!(waited >= delay, "{code:?}: waited {waited:?}, asked for {delay:?}");
        assert_eq!(value(&outcome.metrics, EXPORTED), 4.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_not_retried() {
    let partial = Ok(ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "span too old".to_owned(),
        }),
    });
    let outcome = run_case(vec![partial], 1).await;
    assert_eq!(outcome.calls.len(), 1);
    assert_eq!(value(&outcome.metrics, EXPORTED), 3.0);
    assert_eq!(
        value(&outcome.metrics, "agentrace_spans_dropped_total{reason=\"rejected_by_endpoint\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_is_split_until_it_fits() {
    // 4 spans refused; its first half (2) refused again; then 1 + 1 + the second half (2).
    let outcome = run_case(vec![too_large(), too_large()], 5).await;
    let sizes: Vec<usize> = outcome.calls.iter().map(|(_, spans)| *spans).collect();
    assert_eq!(sizes, vec![4, 2, 1, 1, 2]);
    assert_eq!(value(&outcome.metrics, EXPORTED), 4.0);
    assert_eq!(value(&outcome.metrics, RETRIES), 0.0, "splitting is not retrying");

    let always_too_large: Vec<Answer> = (0..10).map(|_| too_large()).collect();
    let outcome = run_case(always_too_large, 7).await;
    let sizes: Vec<usize> = outcome.calls.iter().map(|(_, spans)| *spans).collect();
    assert_eq!(sizes, vec![4, 2, 1, 1, 2, 1, 1], "down to single spans, then no further");
    assert_eq!(value(&outcome.metrics, "agentrace_spans_dropped_total{reason=\"too_large\"}"), 4.0);
}
