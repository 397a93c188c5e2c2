//! Receive: OTLP/gRPC (`grpc.rs`) and OTLP/HTTP (`http.rs`), both handing decoded requests to
//! [`Ingest`], which checks the span ids, counts, and queues the request for the pipeline: with
//! several processing workers, cut by trace id into one part per worker (`shard.rs`).
//!
//! A request is acknowledged only once it is in the queue. When the queue is full the
//! receivers refuse with a retryable answer (gRPC UNAVAILABLE, HTTP 503 with Retry-After), so
//! the client keeps the data and tries again; nothing acknowledged is dropped here.

mod answer;
mod args;
pub mod decode;
pub mod grpc;
pub mod http;
mod json_size;
mod proto;
pub mod shard;
pub mod walk;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use self::args::{Args, ReceiveConfig};
use crate::auth::BearerToken;
use crate::events::{
    DropReason, RefuseReason, RequestRefused, RequestUnauthenticated, SpansDropped, SpansReceived,
    SpansRefused,
};
pub use crate::events::{RequestRefusal, Transport};
use crate::memory::MemoryGuard;
use crate::metrics::{Registry, Reported};
use crate::wire::{Decoded, ExportTraceServiceRequest, Received};

/// A decoded request on its way through the pipeline.
#[derive(Debug)]
pub struct Batch {
    pub request: ExportTraceServiceRequest,
    /// The bytes `request` was decoded from (re-encoded if the receiver dropped spans), or its
    /// forwarding view when it is a part of one: forwarding reuses them for the spans it does
    /// not change.
    pub received: Received,
    pub spans: usize,
    /// With the persistent queue: answered once the request is on disk, and only then is the
    /// client acknowledged.
    pub stored: Option<StoreAnswer>,
}

pub use self::answer::{StoreAnswer, StoreWait};

/// Depth and capacity of one queue, read by `/metrics`; for the ingest queue, also the spans
/// it holds.
#[derive(Debug)]
pub struct QueueGauge {
    pub name: &'static str,
    pub capacity: usize,
    depth: AtomicUsize,
    spans: AtomicUsize,
}

/// The ingest queue holds at most this many spans per request of its capacity (a queue of
/// 256 requests: 32 768 spans), so that what it holds in memory is bounded whatever the
/// request size; a request that arrives at an empty queue always fits.
pub const QUEUED_SPANS_PER_REQUEST: usize = 128;

impl QueueGauge {
    pub fn new(name: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self { name, capacity, depth: AtomicUsize::new(0), spans: AtomicUsize::new(0) })
    }

    /// The most spans the queue holds (a request that arrives at an empty queue still fits).
    fn span_limit(&self) -> usize {
        self.capacity.saturating_mul(QUEUED_SPANS_PER_REQUEST)
    }

    /// Counts `spans` as queued unless that takes the queue past its span bound.
    fn reserve_spans(&self, spans: usize) -> bool {
        let limit = self.span_limit();
        self.spans
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                (queued == 0 || queued + spans <= limit).then_some(queued + spans)
            })
            .is_ok()
    }

    /// Releases spans counted by an accepted request, once the pipeline took it.
    pub fn release_spans(&self, spans: usize) {
        self.spans.fetch_sub(spans, Ordering::Relaxed);
    }

    pub fn pushed(&self) {
        self.depth.fetch_add(1, Ordering::Relaxed);
    }

    pub fn popped(&self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

impl Reported for QueueGauge {
    fn report(&self, registry: &Registry) {
        registry.emit(crate::events::QueueFill {
            queue: self.name,
            depth: self.depth(),
            capacity: self.capacity,
        });
    }
}

/// What the client is told on success: OTLP partial success when some spans were invalid.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected_spans: i64,
    pub message: String,
}

/// Why a whole request was refused; both are retryable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the collector's queue is full, retry later")]
    QueueFull,
    #[error("the collector is shutting down")]
    ShuttingDown,
    #[error("the collector is above its memory limit, retry later")]
    MemoryLimit,
    #[error("the collector could not store the request, retry later")]
    StoreFailed,
}

impl Refusal {
    fn reason(&self) -> RefuseReason {
        match self {
            Self::QueueFull => RefuseReason::QueueFull,
            Self::ShuttingDown => RefuseReason::ShuttingDown,
            Self::MemoryLimit => RefuseReason::MemoryLimit,
            Self::StoreFailed => RefuseReason::StoreFailed,
        }
    }
}

/// The receivers' handle on the pipeline's input queue.
#[derive(Clone, Debug)]
pub struct Ingest {
    /// One queue per processing worker; a trace's spans always go to the same one.
    queues: Vec<mpsc::Sender<Batch>>,
    gauge: Arc<QueueGauge>,
    registry: Arc<Registry>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    token: Option<BearerToken>,
    /// When set and over its limit, requests are refused.
    memory: Option<Arc<MemoryGuard>>,
    /// With the persistent queue, a request is acknowledged once it is on disk.
    wait_for_store: bool,
}

impl Ingest {
    pub fn new(queues: Vec<mpsc::Sender<Batch>>, gauge: Arc<QueueGauge>, registry: Arc<Registry>) -> Self {
        debug_assert!(!queues.is_empty(), "at least one worker");
        Self { queues, gauge, registry, token: None, memory: None, wait_for_store: false }
    }

    pub fn with_memory_guard(self, memory: Option<Arc<MemoryGuard>>) -> Self {
        Self { memory, ..self }
    }

    /// Acknowledge only once the processing stage has written the request to the persistent
    /// queue.
    pub fn waiting_for_store(self, wait_for_store: bool) -> Self {
        Self { wait_for_store, ..self }
    }

    pub fn with_token(self, token: Option<BearerToken>) -> Self {
        Self { token, ..self }
    }

    /// Whether an `Authorization` header value lets the request in; a refusal is counted.
    pub fn authorized(&self, authorization: Option<&[u8]>, transport: Transport) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let matches = token.admits(authorization);
        if !matches {
            self.registry.emit(RequestUnauthenticated { transport });
        }
        matches
    }

    /// Whether the queue would refuse a request with spans now. The receivers ask before
    /// decoding, so that a collector at its limit does not spend its core decoding requests it
    /// then refuses (which would lower what it accepts below the limit).
    pub fn queue_full(&self) -> bool {
        self.queues.iter().any(|queue| queue.capacity() == 0)
            || self.gauge.spans.load(Ordering::Relaxed) >= self.gauge.span_limit()
    }

    /// Refuses a request of `spans` spans, counted in spans, before it was decoded because the
    /// queue is full.
    pub fn refuse_full(&self, spans: u64, transport: Transport) -> Refusal {
        self.refuse(Refusal::QueueFull, spans, transport)
    }

    /// Counts a request refused before its spans could be counted.
    pub fn refuse_request(&self, reason: RequestRefusal, transport: Transport) {
        self.registry.emit(RequestRefused { transport, reason });
    }

    /// Counts a refused request's spans under the refusal's reason, and returns the refusal.
    fn refuse(&self, refusal: Refusal, spans: u64, transport: Transport) -> Refusal {
        self.registry.emit(SpansRefused { transport, reason: refusal.reason(), spans });
        refusal
    }

    /// Drops spans with invalid ids (reported as partial success), then queues the rest (and,
    /// with the persistent queue, waits until they are on disk).
    pub async fn accept(&self, decoded: Decoded, transport: Transport) -> Result<Accepted, Refusal> {
        let Decoded { mut request, mut encoded } = decoded;
        let received = request.span_count();
        if self.memory.as_ref().is_some_and(|memory| memory.over_limit()) {
            return Err(self.refuse(Refusal::MemoryLimit, received as u64, transport));
        }
        let invalid = drop_invalid_spans(&mut request);
        if invalid > 0 {
            encoded = Bytes::from(prost::Message::encode_to_vec(&request));
        }
        let spans = received - invalid;
        let on_disk = self
            .enqueue(request, encoded, spans)
            .map_err(|refusal| self.refuse(refusal, received as u64, transport))?;
        for stored in on_disk {
            if let Err(refusal) = stored.await.unwrap_or(Err(Refusal::ShuttingDown)) {
                return Err(self.refuse(refusal, received as u64, transport));
            }
        }
        self.registry.emit(SpansReceived { transport, spans: received });
        if invalid == 0 {
            return Ok(Accepted::default());
        }
        self.registry.emit(SpansDropped { reason: DropReason::InvalidSpanId, spans: invalid });
        Ok(Accepted {
            rejected_spans: invalid as i64,
            message: format!("{invalid} span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero; parent_span_id empty or 8 bytes"),
        })
    }
}

impl Ingest {
    /// Queues the request's parts, all or none: a slot in each part's queue is reserved before
    /// any is sent, so that a refused request left nothing behind to be sent twice. Returns,
    /// with the persistent queue, what tells when each part is on disk.
    fn enqueue(
        &self,
        request: ExportTraceServiceRequest,
        encoded: Bytes,
        spans: usize,
    ) -> Result<Vec<StoreWait>, Refusal> {
        if !self.gauge.reserve_spans(spans) {
            return Err(Refusal::QueueFull);
        }
        let parts = shard::split(request, encoded, spans, self.queues.len());
        let mut permits = Vec::with_capacity(parts.len());
        for part in &parts {
            match self.queues[part.worker].try_reserve() {
                Ok(permit) => permits.push(permit),
                Err(error) => {
                    self.gauge.release_spans(spans);
                    return Err(match error {
                        mpsc::error::TrySendError::Full(()) => Refusal::QueueFull,
                        mpsc::error::TrySendError::Closed(()) => Refusal::ShuttingDown,
                    });
                }
            }
        }
        let mut on_disk = Vec::new();
        for (part, permit) in parts.into_iter().zip(permits) {
            let (stored, answer) = self.wait_for_store.then(StoreAnswer::channel).unzip();
            on_disk.extend(answer);
            permit.send(Batch { request: part.request, received: part.received, spans: part.spans, stored });
            self.gauge.pushed();
        }
        Ok(on_disk)
    }
}

fn valid_id(id: &[u8], length: usize) -> bool {
    id.len() == length && id.iter().any(|byte| *byte != 0)
}

/// Removes spans whose ids break the OTLP rules; returns how many.
fn drop_invalid_spans(request: &mut ExportTraceServiceRequest) -> usize {
    let mut dropped = 0;
    for resource_spans in &mut request.resource_spans {
        for scope_spans in &mut resource_spans.scope_spans {
            let before = scope_spans.spans.len();
            scope_spans.spans.retain(|span| {
                valid_id(&span.trace_id, 16)
                    && valid_id(&span.span_id, 8)
                    && (span.parent_span_id.is_empty() || span.parent_span_id.len() == 8)
            });
            dropped += before - scope_spans.spans.len();
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SeriesLimits;
    use crate::wire::{ResourceSpans, ScopeSpans, Span};
    use agentrace_semconv::metric;

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn span(trace_id: Vec<u8>, span_id: Vec<u8>) -> Span {
        Span { trace_id: trace_id.into(), span_id: span_id.into(), ..Default::default() }
    }

    fn decoded(request: ExportTraceServiceRequest) -> Decoded {
        let encoded = Bytes::from(prost::Message::encode_to_vec(&request));
        Decoded { request, encoded }
    }

    fn ingest(capacity: usize) -> (Ingest, mpsc::Receiver<Batch>, Arc<Registry>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let ingest = Ingest::new(vec![sender], QueueGauge::new("ingest", capacity), registry.clone());
        (ingest, receiver, registry)
    }

    #[tokio::test]
    async fn invalid_ids_are_a_partial_success() {
        let (ingest, mut receiver, registry) = ingest(4);
        let spans = vec![
            span(vec![1; 16], vec![1; 8]),
            span(vec![1; 15], vec![1; 8]),
            span(vec![0; 16], vec![1; 8]),
            span(vec![1; 16], vec![0; 8]),
        ];
        let accepted = ingest.accept(decoded(request(spans)), Transport::Http).await.expect("queued");
        assert_eq!(accepted.rejected_spans, 3);
        assert_eq!(receiver.try_recv().expect("queued batch").spans, 1);
        assert_eq!(registry.value(metric::SELF_SPANS_RECEIVED_TOTAL, &["http"]), Some(4.0));
        assert_eq!(registry.value(metric::SELF_SPANS_DROPPED_TOTAL, &["invalid_span_id"]), Some(3.0));
    }

    #[tokio::test]
    async fn a_full_queue_is_known_before_decoding() {
        let (ingest, mut receiver, registry) = ingest(1);
        assert!(!ingest.queue_full());
        let one = request(vec![span(vec![1; 16], vec![1; 8])]);
        assert_eq!(ingest.accept(decoded(one), Transport::Grpc).await, Ok(Accepted::default()));
        assert!(ingest.queue_full(), "one request fills a queue of one");
        assert_eq!(ingest.refuse_full(3, Transport::Grpc), Refusal::QueueFull);
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["grpc", "queue_full"]), Some(3.0));
        let taken = receiver.try_recv().expect("queued");
        ingest.gauge.popped();
        ingest.gauge.release_spans(taken.spans);
        assert!(!ingest.queue_full());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_counts() {
        let (ingest, _receiver, registry) = ingest(1);
        let one = || request(vec![span(vec![1; 16], vec![1; 8])]);
        assert_eq!(ingest.accept(decoded(one()), Transport::Grpc).await, Ok(Accepted::default()));
        assert_eq!(ingest.accept(decoded(one()), Transport::Grpc).await, Err(Refusal::QueueFull));
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["grpc", "queue_full"]), Some(1.0));
        assert_eq!(registry.value(metric::SELF_SPANS_RECEIVED_TOTAL, &["grpc"]), Some(1.0));
    }

    #[tokio::test]
    async fn the_queue_is_also_bounded_in_spans() {
        let (ingest, mut receiver, registry) = ingest(2);
        let spans = |count: u8| request((0..count).map(|n| span(vec![n + 1; 16], vec![1; 8])).collect());
        // Capacity 2: two requests, and 256 spans however many requests that is.
        assert_eq!(ingest.accept(decoded(spans(200)), Transport::Grpc).await, Ok(Accepted::default()));
        assert_eq!(ingest.accept(decoded(spans(100)), Transport::Grpc).await, Err(Refusal::QueueFull));
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["grpc", "queue_full"]), Some(100.0));
        let taken = receiver.try_recv().expect("queued");
        ingest.gauge.popped();
        ingest.gauge.release_spans(taken.spans);
        assert_eq!(ingest.accept(decoded(spans(250)), Transport::Grpc).await, Ok(Accepted::default()));
    }

    #[test]
    fn the_bearer_token_is_checked_and_refusals_counted() {
        let (ingest, _receiver, registry) = ingest(1);
        assert!(ingest.authorized(None, Transport::Http), "no token configured: open");
        let ingest = ingest.with_token(Some(BearerToken::new("s3cret")));
        assert!(ingest.authorized(Some(b"Bearer s3cret"), Transport::Http));
        // Which headers match is `auth.rs`'s to test; here, that refusals are counted.
        assert!(!ingest.authorized(None, Transport::Grpc));
        assert!(!ingest.authorized(Some(b"Bearer wrong"), Transport::Grpc));
        assert_eq!(registry.value(metric::SELF_REQUESTS_UNAUTHENTICATED_TOTAL, &["grpc"]), Some(2.0));
    }

    #[tokio::test]
    async fn over_the_memory_limit_requests_are_refused() {
        let (ingest, _receiver, registry) = ingest(4);
        let ingest = ingest.with_memory_guard(Some(MemoryGuard::new(1)));
        let refused =
            ingest.accept(decoded(request(vec![span(vec![1; 16], vec![1; 8])])), Transport::Http).await;
        assert_eq!(refused, Err(Refusal::MemoryLimit));
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["http", "memory_limit"]), Some(1.0));
    }

    #[tokio::test]
    async fn with_two_workers_each_gets_its_traces_and_a_request_is_queued_whole_or_not_at_all() {
        let (first, mut first_queue) = mpsc::channel(1);
        let (second, mut second_queue) = mpsc::channel(1);
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let ingest = Ingest::new(vec![first, second], QueueGauge::new("ingest", 8), registry.clone());
        let traces = || request((1..=8).map(|trace| span(vec![trace; 16], vec![trace; 8])).collect());
        assert_eq!(ingest.accept(decoded(traces()), Transport::Grpc).await, Ok(Accepted::default()));
        let (one, two) = (first_queue.try_recv().expect("a part"), second_queue.try_recv().expect("a part"));
        assert_eq!(one.spans + two.spans, 8);
        for (worker, part) in [(0, &one), (1, &two)] {
            assert!(part.request.spans().all(|found| shard::worker_of(&found.span.trace_id, 2) == worker));
        }

        // The first worker's queue is full: nothing of the next request may reach the second.
        let only_first = (1..=8).find(|trace| shard::worker_of(&[*trace; 16], 2) == 0).expect("a trace");
        let blocker = request(vec![span(vec![only_first; 16], vec![1; 8])]);
        assert_eq!(ingest.accept(decoded(blocker), Transport::Grpc).await, Ok(Accepted::default()));
        assert_eq!(ingest.accept(decoded(traces()), Transport::Grpc).await, Err(Refusal::QueueFull));
        assert!(second_queue.try_recv().is_err(), "the refused request left nothing behind");
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["grpc", "queue_full"]), Some(8.0));
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_as_shutting_down() {
        let (ingest, receiver, _registry) = ingest(1);
        drop(receiver);
        let refused =
            ingest.accept(decoded(request(vec![span(vec![1; 16], vec![1; 8])])), Transport::Grpc).await;
        assert_eq!(refused, Err(Refusal::ShuttingDown));
    }
}
