//! Forwards traces to the trace endpoint (Tempo, or any OTLP receiver) over OTLP/gRPC or
//! OTLP/HTTP (`transport.rs`).
//!
//! Batches come from the export queue, in memory or on disk alike, and go out unchanged. A
//! failure is retried only when the OTLP spec calls it retryable (`retry.rs`), after the delay
//! the server asked for (RetryInfo, Retry-After) or an exponential backoff with jitter, for at
//! most `--export-max-retry-secs` (with the persistent queue, for as long as the disk budget
//! allows). A batch the endpoint says is too large is split in halves (`split.rs`) and each half
//! sent on its own. Whatever is given up is counted in `agentrace_spans_dropped_total{reason}`;
//! a batch is acknowledged to the queue once it is sent or given up.
//!
//! Up to `--export-concurrency` batches are in flight at once, each with its own retries and
//! splits, so that throughput is not one batch per round trip to the endpoint. The next batch
//! is taken from the queue only when one of them has finished.
//!
//! Routed over several endpoints (`route/`), an exporter whose endpoint has left the set is
//! retired: what its endpoint does not take at once is routed again over the endpoints in use
//! (stored there first, with the persistent queue), instead of waiting for an address that
//! may never come back.

pub(crate) mod retry;
mod split;
mod transport;

use std::sync::Arc;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::retry::{backoff, Verdict};
use self::split::split_in_half;
pub use self::transport::{export_grpc, system_http_client, EncodedCodec, HttpClient, TransportError};
use self::transport::{Answer, Transport};
use crate::events::{DropReason, ExportRetried, SpansDropped, SpansExported};
use crate::export::args::ExportConfig;
use crate::export::queue::{Payload, QueueReceiver};
use crate::export::route::Reroute;
use crate::metrics::Registry;
use crate::wire::raw::ResourceSpans;

pub struct OtlpExporter {
    config: ExportConfig,
    registry: Arc<Registry>,
    transport: Transport,
    /// Cancelled when the shutdown deadline passes: retries stop and what is left is counted.
    hard_stop: CancellationToken,
    /// Set for an endpoint of a routed set: once it is retired, failures are routed again.
    reroute: Option<Reroute>,
}

/// How sending a batch whole ended.
enum Attempt {
    /// Exported, or given up on (and counted).
    Done,
    /// The endpoint says it is too large: here it is back, to split.
    TooLarge(Payload),
    /// The hard stop came first.
    Interrupted,
    /// The endpoint is retired and did not take it: here it is back, to route again.
    Retired(Payload),
}

/// A batch back from its attempts: its own once no request holds it, else a copy (a request
/// body the connection has not let go of yet).
fn owned(payload: Arc<Payload>) -> Payload {
    Arc::try_unwrap(payload).unwrap_or_else(|shared| (*shared).clone())
}

impl OtlpExporter {
    pub fn new(
        config: ExportConfig,
        registry: Arc<Registry>,
        hard_stop: CancellationToken,
    ) -> Result<Self, TransportError> {
        let transport = Transport::new(&config)?;
        Ok(Self { config, registry, transport, hard_stop, reroute: None })
    }

    /// An exporter to one endpoint of a routed set, which `reroute` retires.
    pub fn rerouting(self, reroute: Reroute) -> Self {
        Self { reroute: Some(reroute), ..self }
    }

    /// Sends batches, up to the configured concurrency at once, until the queue ends (its
    /// sender gone and everything taken) and the last batch in flight is settled.
    pub async fn run(self, mut queue: QueueReceiver) {
        let exporter = Arc::new(self);
        let slots = Arc::new(Semaphore::new(exporter.config.concurrency));
        let mut in_flight = JoinSet::new();
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            while in_flight.try_join_next().is_some() {}
            let Some(batch) = queue.next_batch(exporter.config.batch_spans).await else { break };
            let (exporter, settler) = (exporter.clone(), queue.settler());
            in_flight.spawn(async move {
                match exporter.send(batch.payload, batch.spans).await {
                    0 => settler.ack(batch.receipt).await,
                    unsent => settler.abandon(batch.receipt, unsent),
                }
                drop(slot);
            });
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// Sends one batch, splitting it while the endpoint says it is too large. Returns how many
    /// spans the hard stop left unsent (0 when it did not interrupt).
    async fn send(&self, payload: Payload, spans: usize) -> usize {
        let mut pending = vec![(payload, spans)];
        while let Some((batch, count)) = pending.pop() {
            let too_large = match self.send_whole(batch, count).await {
                Attempt::Done => continue,
                Attempt::Interrupted => return count + pending.iter().map(|(_, count)| count).sum::<usize>(),
                Attempt::Retired(batch) => {
                    let durable = self.config.persistent.is_some();
                    let rerouted = match (&self.reroute, self.readable(batch, count)) {
                        (Some(reroute), Some(batch)) => reroute.send(batch, count, durable).await,
                        (_, None) => true,
                        (None, Some(_)) => false,
                    };
                    if rerouted {
                        continue;
                    }
                    // Not stored elsewhere: it stays where it is (on disk, read again).
                    return count + pending.iter().map(|(_, count)| count).sum::<usize>();
                }
                Attempt::TooLarge(batch) => batch,
            };
            if count < 2 {
                tracing::warn!(endpoint = %self.config.endpoint, "a single span is over the trace endpoint's size limit, dropping it");
                self.registry.emit(SpansDropped { reason: DropReason::TooLarge, spans: count });
                continue;
            }
            tracing::debug!(spans = count, "trace endpoint says the batch is too large, splitting it");
            let Some(too_large) = self.readable(too_large, count) else { continue };
            let [first, second] = split_in_half(too_large, count);
            pending.push((Payload::Decoded(second.0), second.1));
            pending.push((Payload::Decoded(first.0), first.1));
        }
        0
    }

    /// The batch's resource spans to split or route again; `None`, counted, for stored bytes
    /// that do not decode.
    fn readable(&self, payload: Payload, spans: usize) -> Option<Vec<ResourceSpans>> {
        let resource_spans = payload.into_resource_spans();
        if resource_spans.is_none() {
            tracing::warn!(spans, "a stored batch cannot be decoded to split or route it, dropping it");
            self.registry.emit(SpansDropped { reason: DropReason::QueueUnreadable, spans });
        }
        resource_spans
    }

    /// Sends a batch whole, with retries; gives the batch back when it is too large.
    async fn send_whole(&self, payload: Payload, spans: usize) -> Attempt {
        let started = Instant::now();
        let mut attempt = 0u32;
        // Shared with each attempt's request; encoded by the transport for each attempt.
        let payload = Arc::new(payload);
        loop {
            let wait = match self.transport.attempt(&payload, self.config.timeout).await {
                Answer::Accepted { rejected } => {
                    self.accepted(spans, rejected);
                    return Attempt::Done;
                }
                Answer::Failed { verdict: Verdict::Retry(_), .. }
                    if self.reroute.as_ref().is_some_and(Reroute::is_retired) =>
                {
                    return Attempt::Retired(owned(payload))
                }
                Answer::Failed { verdict: Verdict::Retry(asked), detail } => {
                    tracing::debug!(%detail, attempt, "otlp export failed, retrying");
                    asked
                }
                Answer::Failed { verdict: Verdict::Split, .. } => return Attempt::TooLarge(owned(payload)),
                Answer::Failed { verdict: Verdict::GiveUp, detail } => {
                    tracing::warn!(%detail, spans, "otlp export refused, dropping batch");
                    self.registry.emit(SpansDropped { reason: DropReason::ExportRefused, spans });
                    return Attempt::Done;
                }
            };
            let delay =
                wait.unwrap_or_else(|| backoff(self.config.first_backoff, attempt, rand::rng().random()));
            if self.config.max_retry.is_some_and(|limit| started.elapsed() + delay > limit) {
                tracing::warn!(spans, endpoint = %self.config.endpoint, "otlp export retries exhausted, dropping batch");
                self.registry.emit(SpansDropped { reason: DropReason::ExportRetriesExhausted, spans });
                return Attempt::Done;
            }
            self.registry.emit(ExportRetried);
            attempt += 1;
            let retired = async {
                match &self.reroute {
                    Some(reroute) => reroute.retiring().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                () = retired => {}
                _ = self.hard_stop.cancelled() => return Attempt::Interrupted,
            }
        }
    }

    fn accepted(&self, spans: usize, rejected: usize) {
        let rejected = rejected.min(spans);
        self.registry.emit(SpansExported { spans: spans - rejected });
        if rejected > 0 {
            tracing::warn!(rejected, endpoint = %self.config.endpoint, "trace endpoint rejected spans");
            self.registry.emit(SpansDropped { reason: DropReason::RejectedByEndpoint, spans: rejected });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use prost::Message;

    use super::*;
    use crate::export::args::ExportProtocol;
    use crate::export::queue::{self, Forward};
    use crate::metrics::SeriesLimits;
    use crate::wire::{raw, Span};
    use agentrace_semconv::metric;

    fn config(endpoint: String) -> ExportConfig {
        ExportConfig {
            endpoint,
            protocol: ExportProtocol::Grpc,
            tls: None,
            batch_spans: 100,
            concurrency: 1,
            timeout: Duration::from_secs(5),
            first_backoff: Duration::from_millis(20),
            max_retry: Some(Duration::from_secs(30)),
            persistent: None,
            routing: None,
        }
    }

    fn forward(first_id: u8, spans: u8) -> Forward {
        let span = |n: u8| {
            Bytes::from(Span { span_id: vec![first_id + n; 8].into(), ..Default::default() }.encode_to_vec())
        };
        let scope =
            raw::ScopeSpans { spans: (0..spans).map(span).map(Into::into).collect(), ..Default::default() };
        let request = raw::ExportTraceServiceRequest {
            resource_spans: vec![raw::ResourceSpans { scope_spans: vec![scope], ..Default::default() }],
        };
        Forward { request, spans: usize::from(spans), stored: None }
    }

    #[tokio::test]
    async fn batches_go_out_concurrently_up_to_the_limit_and_all_arrive() {
        let sink = agentrace_testkit::Sink { delay: Duration::from_millis(100), ..Default::default() };
        let address = sink.start().await;
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let (mut sender, receiver, _) = queue::memory(registry.clone());
        let config = ExportConfig { batch_spans: 2, concurrency: 3, ..config(format!("http://{address}")) };
        let exporter =
            OtlpExporter::new(config, registry.clone(), CancellationToken::new()).expect("exporter");
        for first in 0..12u8 {
            sender.push(forward(first * 2 + 1, 2)).await;
        }
        let running = tokio::spawn(exporter.run(receiver));
        drop(sender);
        running.await.expect("the exporter ends once every batch is settled");
        let mut ids: Vec<u8> = sink.spans().iter().map(|(_, span)| span.span_id[0]).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=24).collect::<Vec<u8>>(), "every span once");
        let most = sink.most_in_flight.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(most, 3, "three batches in flight at once, never more");
        assert_eq!(registry.value(metric::SELF_SPANS_EXPORTED_TOTAL, &[]), Some(24.0));
    }

    #[tokio::test]
    async fn batches_in_reach_the_endpoint_and_the_exporter_ends_with_its_queue() {
        let sink = agentrace_testkit::Sink::default();
        let address = sink.start().await;
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let (mut sender, receiver, _) = queue::memory(registry.clone());
        let exporter = OtlpExporter::new(
            config(format!("http://{address}")),
            registry.clone(),
            CancellationToken::new(),
        )
        .expect("exporter");
        let running = tokio::spawn(exporter.run(receiver));
        sender.push(forward(1, 3)).await;
        sender.push(forward(10, 2)).await;
        drop(sender);
        running.await.expect("the exporter ends once its queue is drained");
        let ids: Vec<u8> = sink.spans().iter().map(|(_, span)| span.span_id[0]).collect();
        assert_eq!(ids, vec![1, 2, 3, 10, 11]);
        assert_eq!(registry.value(metric::SELF_SPANS_EXPORTED_TOTAL, &[]), Some(5.0));
    }

    #[tokio::test]
    async fn at_the_hard_stop_what_the_endpoint_never_took_is_counted() {
        let down = agentrace_testkit::reserve_address();
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let (mut sender, receiver, _) = queue::memory(registry.clone());
        let hard_stop = CancellationToken::new();
        let exporter = OtlpExporter::new(
            config(format!("http://{}", down.address)),
            registry.clone(),
            hard_stop.clone(),
        )
        .expect("exporter");
        let running = tokio::spawn(exporter.run(receiver));
        sender.push(forward(1, 4)).await;
        drop(sender);
        agentrace_testkit::eventually("a retry", async || {
            registry.value(metric::SELF_EXPORT_RETRIES_TOTAL, &[]).filter(|retries| *retries >= 1.0)
        })
        .await;
        hard_stop.cancel();
        running.await.expect("the exporter gives up at the hard stop");
        assert_eq!(registry.value(metric::SELF_SPANS_DROPPED_TOTAL, &["shutdown"]), Some(4.0));
        assert_eq!(registry.value(metric::SELF_SPANS_EXPORTED_TOTAL, &[]), Some(0.0));
    }
}
