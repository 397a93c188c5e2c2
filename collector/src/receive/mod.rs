//! Receive: OTLP/gRPC (`grpc.rs`) and OTLP/HTTP (`http.rs`), both handing decoded requests to
//! [`Ingest`], which checks the span ids, counts, and queues the request for the pipeline.
//!
//! A request is acknowledged only once it is in the queue. When the queue is full the
//! receivers refuse with a retryable answer (gRPC UNAVAILABLE, HTTP 503 with Retry-After), so
//! the client keeps the data and tries again; nothing acknowledged is dropped here.

pub mod decode;
pub mod grpc;
pub mod http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agentrace_semconv::metric;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::{mpsc, oneshot};

use crate::memory::MemoryGuard;
use crate::metrics::Registry;
use crate::unix_now;

/// A decoded request on its way through the pipeline.
#[derive(Debug)]
pub struct Batch {
    pub request: ExportTraceServiceRequest,
    pub spans: usize,
    /// With the persistent queue: answered once the request is on disk, and only then is the
    /// client acknowledged.
    pub stored: Option<oneshot::Sender<Result<(), Refusal>>>,
}

/// Depth and capacity of one queue, read by `/metrics`.
#[derive(Debug)]
pub struct QueueGauge {
    pub name: &'static str,
    pub capacity: usize,
    depth: AtomicUsize,
}

impl QueueGauge {
    pub fn new(name: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self { name, capacity, depth: AtomicUsize::new(0) })
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }
}

/// What the client is told on success: OTLP partial success when some spans were invalid.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected_spans: i64,
    pub message: String,
}

/// Why a whole request was refused; both are retryable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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
    fn reason(&self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ShuttingDown => "shutting_down",
            Self::MemoryLimit => "memory_limit",
            Self::StoreFailed => "store_failed",
        }
    }
}

/// The receivers' handle on the pipeline's input queue.
#[derive(Clone, Debug)]
pub struct Ingest {
    queue: mpsc::Sender<Batch>,
    gauge: Arc<QueueGauge>,
    registry: Arc<Registry>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    token: Option<Arc<str>>,
    /// When set and over its limit, requests are refused.
    memory: Option<Arc<MemoryGuard>>,
    /// With the persistent queue, a request is acknowledged once it is on disk.
    wait_for_store: bool,
}

impl Ingest {
    pub fn new(queue: mpsc::Sender<Batch>, gauge: Arc<QueueGauge>, registry: Arc<Registry>) -> Self {
        Self { queue, gauge, registry, token: None, memory: None, wait_for_store: false }
    }

    pub fn with_memory_guard(self, memory: Option<Arc<MemoryGuard>>) -> Self {
        Self { memory, ..self }
    }

    /// Acknowledge only once the processing stage has written the request to the persistent
    /// queue.
    pub fn waiting_for_store(self, wait_for_store: bool) -> Self {
        Self { wait_for_store, ..self }
    }

    pub fn with_token(self, token: Option<Arc<str>>) -> Self {
        Self { token, ..self }
    }

    /// Whether an `Authorization` header value lets the request in; a refusal is counted.
    /// The comparison takes the same time whatever the bytes, so it leaks nothing.
    pub fn authorized(&self, authorization: Option<&[u8]>, transport: Transport) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = authorization.and_then(|value| value.strip_prefix(b"Bearer ")).unwrap_or_default();
        let matches: bool = subtle::ConstantTimeEq::ct_eq(presented, token.as_bytes()).into();
        if !matches {
            self.registry.add(
                metric::SELF_REQUESTS_UNAUTHENTICATED_TOTAL,
                &[transport.as_str()],
                1.0,
                unix_now(),
            );
        }
        matches
    }

    /// Drops spans with invalid ids (reported as partial success), then queues the rest (and,
    /// with the persistent queue, waits until they are on disk).
    pub async fn accept(
        &self,
        mut request: ExportTraceServiceRequest,
        transport: Transport,
    ) -> Result<Accepted, Refusal> {
        let now = unix_now();
        let received: usize = span_count(&request);
        if self.memory.as_ref().is_some_and(|memory| memory.over_limit()) {
            let labels = [transport.as_str(), Refusal::MemoryLimit.reason()];
            self.registry.add(metric::SELF_SPANS_REFUSED_TOTAL, &labels, received as f64, now);
            return Err(Refusal::MemoryLimit);
        }
        let invalid = drop_invalid_spans(&mut request);
        let spans = received - invalid;
        let (stored, on_disk) = match self.wait_for_store {
            true => {
                let (sender, receiver) = oneshot::channel();
                (Some(sender), Some(receiver))
            }
            false => (None, None),
        };
        let batch = Batch { request, spans, stored };
        if let Err(error) = self.queue.try_send(batch) {
            let refusal = match error {
                mpsc::error::TrySendError::Full(_) => Refusal::QueueFull,
                mpsc::error::TrySendError::Closed(_) => Refusal::ShuttingDown,
            };
            let labels = [transport.as_str(), refusal.reason()];
            self.registry.add(metric::SELF_SPANS_REFUSED_TOTAL, &labels, received as f64, now);
            return Err(refusal);
        }
        self.gauge.pushed();
        if let Some(on_disk) = on_disk {
            let stored = on_disk.await.unwrap_or(Err(Refusal::ShuttingDown));
            if let Err(refusal) = stored {
                let labels = [transport.as_str(), refusal.reason()];
                self.registry.add(metric::SELF_SPANS_REFUSED_TOTAL, &labels, received as f64, unix_now());
                return Err(refusal);
            }
        }
        self.registry.add(metric::SELF_SPANS_RECEIVED_TOTAL, &[transport.as_str()], received as f64, now);
        if invalid == 0 {
            return Ok(Accepted::default());
        }
        self.registry.add(metric::SELF_SPANS_DROPPED_TOTAL, &["invalid_span_id"], invalid as f64, now);
        Ok(Accepted {
            rejected_spans: invalid as i64,
            message: format!("{invalid} span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero; parent_span_id empty or 8 bytes"),
        })
    }
}

pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .map(|scope_spans| scope_spans.spans.len())
        .sum()
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
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn span(trace_id: Vec<u8>, span_id: Vec<u8>) -> Span {
        Span { trace_id, span_id, ..Default::default() }
    }

    fn ingest(capacity: usize) -> (Ingest, mpsc::Receiver<Batch>, Arc<Registry>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let registry = Arc::new(Registry::new(SeriesLimits::default()));
        let ingest = Ingest::new(sender, QueueGauge::new("ingest", capacity), registry.clone());
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
        let accepted = ingest.accept(request(spans), Transport::Http).await.expect("queued");
        assert_eq!(accepted.rejected_spans, 3);
        assert_eq!(receiver.try_recv().expect("queued batch").spans, 1);
        assert_eq!(registry.value(metric::SELF_SPANS_RECEIVED_TOTAL, &["http"]), Some(4.0));
        assert_eq!(registry.value(metric::SELF_SPANS_DROPPED_TOTAL, &["invalid_span_id"]), Some(3.0));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_counts() {
        let (ingest, _receiver, registry) = ingest(1);
        let one = || request(vec![span(vec![1; 16], vec![1; 8])]);
        assert_eq!(ingest.accept(one(), Transport::Grpc).await, Ok(Accepted::default()));
        assert_eq!(ingest.accept(one(), Transport::Grpc).await, Err(Refusal::QueueFull));
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["grpc", "queue_full"]), Some(1.0));
        assert_eq!(registry.value(metric::SELF_SPANS_RECEIVED_TOTAL, &["grpc"]), Some(1.0));
    }

    #[test]
    fn the_bearer_token_is_checked_and_refusals_counted() {
        let (ingest, _receiver, registry) = ingest(1);
        assert!(ingest.authorized(None, Transport::Http), "no token configured: open");
        let ingest = ingest.with_token(Some(Arc::from("s3cret")));
        assert!(ingest.authorized(Some(b"Bearer s3cret"), Transport::Http));
        for wrong in [
            None,
            Some(&b"Bearer s3cre"[..]),
            Some(b"Bearer s3cret!"),
            Some(b"s3cret"),
            Some(b"Basic s3cret"),
        ] {
            assert!(!ingest.authorized(wrong, Transport::Grpc), "{wrong:?}");
        }
        assert_eq!(registry.value(metric::SELF_REQUESTS_UNAUTHENTICATED_TOTAL, &["grpc"]), Some(5.0));
    }

    #[tokio::test]
    async fn over_the_memory_limit_requests_are_refused() {
        let (ingest, _receiver, registry) = ingest(4);
        let ingest = ingest.with_memory_guard(Some(MemoryGuard::new(1)));
        let refused = ingest.accept(request(vec![span(vec![1; 16], vec![1; 8])]), Transport::Http).await;
        assert_eq!(refused, Err(Refusal::MemoryLimit));
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["http", "memory_limit"]), Some(1.0));
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_as_shutting_down() {
        let (ingest, receiver, _registry) = ingest(1);
        drop(receiver);
        let refused = ingest.accept(request(vec![span(vec![1; 16], vec![1; 8])]), Transport::Grpc).await;
        assert_eq!(refused, Err(Refusal::ShuttingDown));
    }
}
