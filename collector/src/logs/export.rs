//! Forwards logs to `--logs-endpoint` with the traces' retry rules (`export/otlp/retry.rs`):
//! only what the OTLP spec calls transient is retried, after the delay the endpoint asked for
//! or an exponential backoff with jitter, for at most `--export-max-retry-secs`. What is given
//! up is counted in `agentrace_log_records_dropped_total{reason}`; what the endpoint takes, in
//! `agentrace_log_records_exported_total`. The queue before it is bounded: when it is full,
//! the receivers refuse logs with a retryable answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::args::LogsEndpoint;
use super::Forwarded;
use crate::events::{LogRecordsDropped, LogRecordsExported};
use crate::export::otlp::retry::{backoff, http_verdict, verdict, Verdict};
use crate::export::otlp::{system_http_client, EncodedCodec, HttpClient};
use crate::metrics::Registry;

/// Requests waiting to be forwarded, at most.
pub const QUEUE_CAPACITY: usize = 256;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

enum Transport {
    Http { client: Box<HttpClient>, url: http::Uri },
    Grpc(tonic::client::Grpc<Channel>),
}

pub struct LogsExporter {
    transport: Transport,
    registry: Arc<Registry>,
    max_retry: Duration,
}

/// How one attempt ended.
enum Answer {
    Accepted { rejected: u64 },
    Failed(Verdict),
}

impl LogsExporter {
    pub fn new(
        endpoint: &LogsEndpoint,
        registry: Arc<Registry>,
        max_retry: Duration,
    ) -> anyhow::Result<Self> {
        let transport = match endpoint {
            LogsEndpoint::Http(url) => {
                Transport::Http { client: Box::new(system_http_client()?), url: url.parse()? }
            }
            LogsEndpoint::Grpc(url) => {
                let channel = tonic::transport::Endpoint::from_shared(url.clone())?.connect_lazy();
                Transport::Grpc(tonic::client::Grpc::new(channel))
            }
        };
        Ok(Self { transport, registry, max_retry })
    }

    /// Forwards what the queue holds until it closes; after `hard_stop`, what is left is counted
    /// as dropped.
    pub async fn run(self, mut queue: mpsc::Receiver<Forwarded>, hard_stop: CancellationToken) {
        while let Some(forwarded) = queue.recv().await {
            self.send(forwarded, &hard_stop).await;
        }
    }

    async fn send(&self, forwarded: Forwarded, hard_stop: &CancellationToken) {
        let give_up_at = Instant::now() + self.max_retry;
        for attempt in 0u32.. {
            let wait = match self.attempt(forwarded.body.clone()).await {
                Answer::Accepted { rejected } => {
                    let rejected = rejected.min(forwarded.records);
                    self.registry.emit(LogRecordsExported { records: forwarded.records - rejected });
                    if rejected > 0 {
                        self.registry
                            .emit(LogRecordsDropped { reason: "rejected_by_endpoint", records: rejected });
                    }
                    return;
                }
                Answer::Failed(Verdict::Retry(after)) => {
                    after.unwrap_or_else(|| backoff(FIRST_BACKOFF, attempt, rand::rng().random()))
                }
                Answer::Failed(Verdict::Split | Verdict::GiveUp) => {
                    self.registry
                        .emit(LogRecordsDropped { reason: "export_refused", records: forwarded.records });
                    return;
                }
            };
            if Instant::now() + wait > give_up_at {
                self.registry.emit(LogRecordsDropped {
                    reason: "export_retries_exhausted",
                    records: forwarded.records,
                });
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = hard_stop.cancelled() => {
                    self.registry.emit(LogRecordsDropped { reason: "shutdown", records: forwarded.records });
                    return;
                }
            }
        }
    }

    async fn attempt(&self, body: Bytes) -> Answer {
        match &self.transport {
            Transport::Grpc(client) => {
                let mut client = client.clone();
                let call = async {
                    client.ready().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
                    let path = http::uri::PathAndQuery::from_static(super::LOGS_PATH);
                    client
                        .unary(
                            tonic::Request::new(body),
                            path,
                            EncodedCodec::<ExportLogsServiceResponse>::default(),
                        )
                        .await
                };
                match tokio::time::timeout(ATTEMPT_TIMEOUT, call).await {
                    Ok(Ok(response)) => Answer::Accepted { rejected: rejected(&response.into_inner()) },
                    Ok(Err(status)) => Answer::Failed(verdict(&status)),
                    Err(_) => Answer::Failed(Verdict::Retry(None)),
                }
            }
            Transport::Http { client, url } => {
                let post = http::Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(Full::new(body));
                let Ok(post) = post else { return Answer::Failed(Verdict::GiveUp) };
                let exchange = async {
                    let response = client.request(post).await.ok()?;
                    let (parts, body) = response.into_parts();
                    let body = http_body_util::BodyExt::collect(body).await.ok()?.to_bytes();
                    Some((parts, body))
                };
                match tokio::time::timeout(ATTEMPT_TIMEOUT, exchange).await {
                    Ok(Some((parts, body))) if parts.status.is_success() => {
                        let response = ExportLogsServiceResponse::decode(body).unwrap_or_default();
                        Answer::Accepted { rejected: rejected(&response) }
                    }
                    Ok(Some((parts, _))) => {
                        let retry_after =
                            parts.headers.get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
                        Answer::Failed(http_verdict(parts.status.as_u16(), retry_after))
                    }
                    Ok(None) | Err(_) => Answer::Failed(Verdict::Retry(None)),
                }
            }
        }
    }
}

fn rejected(response: &ExportLogsServiceResponse) -> u64 {
    response
        .partial_success
        .as_ref()
        .map_or(0, |partial| u64::try_from(partial.rejected_log_records).unwrap_or(0))
}
