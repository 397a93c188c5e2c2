//! Forwards traces over OTLP/gRPC to the trace endpoint (Tempo, or any OTLP receiver).
//!
//! Requests from the processing stage are merged into batches of up to `batch_spans` spans
//! (or whatever arrived within [`BATCH_WINDOW`]) and sent unchanged. Failures are retried
//! only when the OTLP spec calls them retryable, after the delay the server asked for
//! (RetryInfo) or an exponential backoff with jitter, for at most `max_retry`. Whatever is
//! given up is counted in `agentrace_spans_dropped_total{reason}`.

use std::sync::Arc;
use std::time::Duration;

use agentrace_semconv::metric;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use crate::config::ExportArgs;
use crate::metrics::Registry;
use crate::receive::{Batch, QueueGauge};
use crate::unix_now;

/// How long a partial batch waits for more requests before it is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, after the server's requested delay if it gave one.
    Retry(Option<Duration>),
    /// Give up: retrying cannot help.
    GiveUp,
}

/// The OTLP/gRPC retry rules: these codes are transient; RESOURCE_EXHAUSTED only when the
/// server says when to come back (RetryInfo), since otherwise it means "never".
pub fn verdict(status: &tonic::Status) -> Verdict {
    let retry_after = status.get_details_retry_info().and_then(|info| info.retry_delay);
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Verdict::Retry(retry_after),
        Code::ResourceExhausted if retry_after.is_some() => Verdict::Retry(retry_after),
        _ => Verdict::GiveUp,
    }
}

/// Exponential backoff with jitter: attempt 0 waits about FIRST_BACKOFF, doubling to
/// MAX_BACKOFF, each delay drawn from [0.5, 1.5) of the nominal value.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let nominal = FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(MAX_BACKOFF);
    nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

pub struct OtlpExporter {
    args: ExportArgs,
    registry: Arc<Registry>,
    gauge: Arc<QueueGauge>,
    client: TraceServiceClient<Channel>,
    /// Cancelled when the shutdown deadline passes: retries stop and what is left is counted.
    hard_stop: CancellationToken,
}

impl OtlpExporter {
    pub fn new(
        args: ExportArgs,
        registry: Arc<Registry>,
        gauge: Arc<QueueGauge>,
        hard_stop: CancellationToken,
    ) -> Result<Self, tonic::transport::Error> {
        let channel =
            Endpoint::from_shared(args.endpoint.clone())?.connect_timeout(CONNECT_TIMEOUT).connect_lazy();
        Ok(Self { args, registry, gauge, client: TraceServiceClient::new(channel), hard_stop })
    }

    /// Sends until the input closes and the last batch is out (or given up).
    pub async fn run(mut self, mut input: mpsc::Receiver<Batch>) {
        while let Some(first) = input.recv().await {
            self.gauge.popped();
            let mut spans = first.spans;
            let mut resource_spans = first.request.resource_spans;
            let window_end = Instant::now() + BATCH_WINDOW;
            while spans < self.args.batch_spans {
                match tokio::time::timeout_at(window_end, input.recv()).await {
                    Ok(Some(next)) => {
                        self.gauge.popped();
                        spans += next.spans;
                        resource_spans.extend(next.request.resource_spans);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.send(resource_spans, spans).await;
        }
    }

    async fn send(&mut self, resource_spans: Vec<ResourceSpans>, spans: usize) {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let request = ExportTraceServiceRequest { resource_spans: resource_spans.clone() };
            let outcome = tokio::time::timeout(self.args.timeout, self.client.export(request)).await;
            let wait = match outcome {
                Ok(Ok(response)) => {
                    let rejected = response
                        .into_inner()
                        .partial_success
                        .map_or(0, |partial| partial.rejected_spans.max(0) as usize);
                    let rejected = rejected.min(spans);
                    self.count(metric::SELF_SPANS_EXPORTED_TOTAL, &[], spans - rejected);
                    if rejected > 0 {
                        tracing::warn!(rejected, endpoint = %self.args.endpoint, "trace endpoint rejected spans");
                        self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["rejected_by_endpoint"], rejected);
                    }
                    return;
                }
                Ok(Err(status)) => match verdict(&status) {
                    Verdict::Retry(asked) => {
                        tracing::debug!(code = ?status.code(), message = status.message(), attempt, "otlp export failed, retrying");
                        asked
                    }
                    Verdict::GiveUp => {
                        tracing::warn!(code = ?status.code(), message = status.message(), spans, "otlp export refused, dropping batch");
                        self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["export_refused"], spans);
                        return;
                    }
                },
                Err(_elapsed) => None,
            };
            let delay = wait.unwrap_or_else(|| backoff(attempt, rand::rng().random()));
            if started.elapsed() + delay > self.args.max_retry {
                tracing::warn!(spans, endpoint = %self.args.endpoint, "otlp export retries exhausted, dropping batch");
                self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["export_retries_exhausted"], spans);
                return;
            }
            self.count(metric::SELF_EXPORT_RETRIES_TOTAL, &[], 1);
            attempt += 1;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.hard_stop.cancelled() => {
                    tracing::warn!(spans, "shutdown deadline passed, dropping unexported batch");
                    self.count(metric::SELF_SPANS_DROPPED_TOTAL, &["shutdown"], spans);
                    return;
                }
            }
        }
    }

    fn count(&self, name: &'static str, labels: &[&str], value: usize) {
        self.registry.add(name, labels, value as f64, unix_now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn retries_follow_the_otlp_rules() {
        let retry_info = |code| {
            tonic::Status::with_error_details(
                code,
                "x",
                ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
            )
        };
        let cases = [
            (tonic::Status::new(Code::Unavailable, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::DeadlineExceeded, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::Cancelled, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::Aborted, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::OutOfRange, "x"), Verdict::Retry(None)),
            (tonic::Status::new(Code::DataLoss, "x"), Verdict::Retry(None)),
            (retry_info(Code::Unavailable), Verdict::Retry(Some(Duration::from_secs(3)))),
            (tonic::Status::new(Code::ResourceExhausted, "x"), Verdict::GiveUp),
            (retry_info(Code::ResourceExhausted), Verdict::Retry(Some(Duration::from_secs(3)))),
            (tonic::Status::new(Code::InvalidArgument, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::FailedPrecondition, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Unauthenticated, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::PermissionDenied, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Unimplemented, "x"), Verdict::GiveUp),
            (tonic::Status::new(Code::Internal, "x"), Verdict::GiveUp),
        ];
        for (status, expected) in cases {
            assert_eq!(verdict(&status), expected, "{:?}", status.code());
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        assert_eq!(backoff(0, 0.5), FIRST_BACKOFF);
        assert_eq!(backoff(1, 0.5), FIRST_BACKOFF * 2);
        assert_eq!(backoff(0, 0.0), FIRST_BACKOFF / 2);
        assert_eq!(backoff(20, 0.5), MAX_BACKOFF);
        assert!(backoff(20, 1.0) <= MAX_BACKOFF.mul_f64(1.5));
    }
}
