//! The collector's own metrics (`agentrace_*`), written as events: one small type per thing
//! that happened, with named fields, that knows its metric and the order of its labels. A stage
//! says `registry.emit(SpansDropped { reason: DropReason::TooLarge, spans })`: a missing or
//! misplaced label is a compile error, and each metric's labels are written once, here.
//!
//! The span-derived metrics are not events: `derive` builds them as observations.

use agentrace_semconv::metric;

use crate::gpu::Skip;
use crate::metrics::{Event, Registry};
use crate::view::Eviction;

/// How a request reached the collector.
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

/// Why a whole request was refused, retryably (the client keeps its spans).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    QueueFull,
    ShuttingDown,
    MemoryLimit,
    StoreFailed,
}

/// Why spans the collector had taken were given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Ids of the wrong length or all zero, told to the client as a partial success.
    InvalidSpanId,
    /// The persistent queue made room for newer requests.
    QueueDiskFull,
    /// A request read back from the persistent queue that is not the request it stored.
    QueueUnreadable,
    /// A single span over the trace endpoint's size limit.
    TooLarge,
    /// The endpoint took the request but rejected these spans (partial success).
    RejectedByEndpoint,
    /// The endpoint refused with an answer that retrying cannot change.
    ExportRefused,
    /// Retried for `--export-max-retry-secs` without success.
    ExportRetriesExhausted,
    /// Still unsent when the shutdown deadline passed.
    Shutdown,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpanId => "invalid_span_id",
            Self::QueueDiskFull => "queue_disk_full",
            Self::QueueUnreadable => "queue_unreadable",
            Self::TooLarge => "too_large",
            Self::RejectedByEndpoint => "rejected_by_endpoint",
            Self::ExportRefused => "export_refused",
            Self::ExportRetriesExhausted => "export_retries_exhausted",
            Self::Shutdown => "shutdown",
        }
    }
}

impl RefuseReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ShuttingDown => "shutting_down",
            Self::MemoryLimit => "memory_limit",
            Self::StoreFailed => "store_failed",
        }
    }
}

pub struct BuildInfo;

impl Event for BuildInfo {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_BUILD_INFO, &[env!("CARGO_PKG_VERSION")], 1.0, now);
    }
}

pub struct SpansReceived {
    pub transport: Transport,
    pub spans: usize,
}

impl Event for SpansReceived {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_SPANS_RECEIVED_TOTAL, &[self.transport.as_str()], self.spans as f64, now);
    }
}

pub struct SpansRefused {
    pub transport: Transport,
    pub reason: RefuseReason,
    pub spans: u64,
}

impl Event for SpansRefused {
    fn emit(self, registry: &Registry, now: f64) {
        let labels = [self.transport.as_str(), self.reason.as_str()];
        registry.add(metric::SELF_SPANS_REFUSED_TOTAL, &labels, self.spans as f64, now);
    }
}

pub struct RequestUnauthenticated {
    pub transport: Transport,
}

impl Event for RequestUnauthenticated {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_REQUESTS_UNAUTHENTICATED_TOTAL, &[self.transport.as_str()], 1.0, now);
    }
}

pub struct SpansDropped {
    pub reason: DropReason,
    pub spans: usize,
}

impl Event for SpansDropped {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_SPANS_DROPPED_TOTAL, &[self.reason.as_str()], self.spans as f64, now);
    }
}

pub struct SpansExported {
    pub spans: usize,
}

impl Event for SpansExported {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_SPANS_EXPORTED_TOTAL, &[], self.spans as f64, now);
    }
}

pub struct ExportRetried;

impl Event for ExportRetried {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_EXPORT_RETRIES_TOTAL, &[], 1.0, now);
    }
}

/// A queue's fill, as a scrape reads it.
pub struct QueueFill {
    pub queue: &'static str,
    pub depth: usize,
    pub capacity: usize,
}

impl Event for QueueFill {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_QUEUE_DEPTH, &[self.queue], self.depth as f64, now);
        registry.add(metric::SELF_QUEUE_CAPACITY, &[self.queue], self.capacity as f64, now);
    }
}

/// How many trace endpoints spans are routed over, as a scrape reads it.
pub struct ExportEndpoints {
    pub endpoints: usize,
}

impl Event for ExportEndpoints {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_EXPORT_ENDPOINTS, &[], self.endpoints as f64, now);
    }
}

/// The persistent queue's contents, as a scrape reads them.
pub struct DiskQueueFill {
    pub requests: u64,
    pub bytes: u64,
}

impl Event for DiskQueueFill {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_QUEUE_DEPTH, &["disk"], self.requests as f64, now);
        registry.add(metric::SELF_QUEUE_DISK_BYTES, &[], self.bytes as f64, now);
    }
}

/// The agent-graph windows' fill, summed over the processing workers.
pub struct GraphWindowFill {
    pub pending_spans: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

impl Event for GraphWindowFill {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_ATTRIBUTION_PENDING_SPANS, &[], self.pending_spans as f64, now);
        registry.add(metric::SELF_GRAPH_BYTES, &[], self.bytes as f64, now);
        registry.add(metric::SELF_GRAPH_MAX_BYTES, &[], self.max_bytes as f64, now);
    }
}

/// The process's memory, as a scrape reads it.
pub struct MemoryUse {
    pub rss_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
}

impl Event for MemoryUse {
    fn emit(self, registry: &Registry, now: f64) {
        if let Some(rss) = self.rss_bytes {
            registry.add(metric::SELF_MEMORY_RSS_BYTES, &[], rss as f64, now);
        }
        if let Some(limit) = self.limit_bytes {
            registry.add(metric::SELF_MEMORY_LIMIT_BYTES, &[], limit as f64, now);
        }
    }
}

pub struct GpuAvailable {
    pub available: bool,
}

impl Event for GpuAvailable {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_GPU_AVAILABLE, &[], f64::from(u8::from(self.available)), now);
    }
}

/// An LLM or model-load span forwarded without its GPU picture.
pub struct GpuEnrichmentSkipped {
    pub reason: Skip,
    /// The span's sampling weight.
    pub weight: f64,
}

impl Event for GpuEnrichmentSkipped {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_GPU_ENRICHMENT_SKIPPED_TOTAL, &[self.reason.reason()], self.weight, now);
    }
}

/// A connection the collector closed: a timeout, or the connection cap.
pub struct ConnectionClosed {
    pub listener: &'static str,
    pub reason: &'static str,
}

impl Event for ConnectionClosed {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_CONNECTIONS_CLOSED_TOTAL, &[self.listener, self.reason], 1.0, now);
    }
}

/// Why a request was refused before its spans could be counted: retryably before its body
/// was read, or for good because the body is not a request the collector takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestRefusal {
    /// Its bytes did not fit in `--max-inflight-bytes` (retryable).
    InflightBytes,
    /// No byte of its body arrived in the first body window (retryable; the connection stays).
    BodyNotStarted,
    /// Over `--max-request-bytes`, or a body of nearly empty messages that would take over
    /// 16 times its size decoded.
    TooLarge,
    /// Not protobuf or OTLP/JSON of the request, gzip that does not inflate, a string that is
    /// not UTF-8.
    Malformed,
    /// A media type or content encoding the receiver does not read.
    Unsupported,
}

impl RequestRefusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::InflightBytes => "inflight_bytes",
            Self::BodyNotStarted => "body_not_started",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::Unsupported => "unsupported",
        }
    }
}

pub struct RequestRefused {
    pub transport: Transport,
    pub reason: RequestRefusal,
}

impl Event for RequestRefused {
    fn emit(self, registry: &Registry, now: f64) {
        let labels = [self.transport.as_str(), self.reason.as_str()];
        registry.add(metric::SELF_REQUESTS_REFUSED_TOTAL, &labels, 1.0, now);
    }
}

/// The request bytes arriving now and their budget, as a scrape reads them.
pub struct InflightBytes {
    pub used: u64,
    pub limit: u64,
}

impl Event for InflightBytes {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_INFLIGHT_REQUEST_BYTES, &[], self.used as f64, now);
        registry.add(metric::SELF_INFLIGHT_REQUEST_BYTES_LIMIT, &[], self.limit as f64, now);
    }
}

pub struct ScrapeTruncated;

impl Event for ScrapeTruncated {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_SCRAPE_TRUNCATED_TOTAL, &[], 1.0, now);
    }
}

/// The live view's store, as a scrape reads it.
pub struct ViewFill {
    pub traces: usize,
    pub bytes: usize,
    pub max_bytes: usize,
}

impl Event for ViewFill {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_VIEW_TRACES, &[], self.traces as f64, now);
        registry.add(metric::SELF_VIEW_BYTES, &[], self.bytes as f64, now);
        registry.add(metric::SELF_VIEW_MAX_BYTES, &[], self.max_bytes as f64, now);
    }
}

/// Spans the live view's store let go or did not keep.
pub struct ViewEvicted {
    pub reason: Eviction,
    pub count: u64,
}

impl Event for ViewEvicted {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_VIEW_SPANS_DROPPED_TOTAL, &[self.reason.as_str()], self.count as f64, now);
    }
}

/// Log records received.
pub struct LogRecordsReceived {
    pub transport: Transport,
    pub records: u64,
}

impl Event for LogRecordsReceived {
    fn emit(self, registry: &Registry, now: f64) {
        let labels = [self.transport.as_str()];
        registry.add(metric::SELF_LOG_RECORDS_RECEIVED_TOTAL, &labels, self.records as f64, now);
    }
}

/// Log records the logs endpoint took.
pub struct LogRecordsExported {
    pub records: u64,
}

impl Event for LogRecordsExported {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_LOG_RECORDS_EXPORTED_TOTAL, &[], self.records as f64, now);
    }
}

/// Log records given up on: `export_refused`, `export_retries_exhausted`, `rejected_by_endpoint`,
/// `shutdown`.
pub struct LogRecordsDropped {
    pub reason: &'static str,
    pub records: u64,
}

impl Event for LogRecordsDropped {
    fn emit(self, registry: &Registry, now: f64) {
        registry.add(metric::SELF_LOG_RECORDS_DROPPED_TOTAL, &[self.reason], self.records as f64, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Format, SeriesLimits};

    /// Every event once: the registry asserts (in debug builds) that each metric exists and
    /// gets as many labels as it has.
    #[test]
    fn every_event_fits_its_metric() {
        let registry = Registry::new(SeriesLimits::default());
        registry.emit(BuildInfo);
        registry.emit(SpansReceived { transport: Transport::Grpc, spans: 3 });
        registry.emit(SpansRefused { transport: Transport::Http, reason: RefuseReason::QueueFull, spans: 2 });
        registry.emit(RequestUnauthenticated { transport: Transport::Http });
        registry.emit(SpansDropped { reason: DropReason::Shutdown, spans: 1 });
        registry.emit(SpansExported { spans: 3 });
        registry.emit(ExportRetried);
        registry.emit(QueueFill { queue: "ingest", depth: 1, capacity: 4 });
        registry.emit(DiskQueueFill { requests: 2, bytes: 100 });
        registry.emit(MemoryUse { rss_bytes: Some(10), limit_bytes: Some(20) });
        registry.emit(GpuAvailable { available: true });
        registry.emit(GpuEnrichmentSkipped { reason: Skip::NoSamples, weight: 1.0 });
        registry.emit(ConnectionClosed { listener: "otlp_http", reason: "idle_timeout" });
        registry.emit(RequestRefused { transport: Transport::Grpc, reason: RequestRefusal::InflightBytes });
        registry.emit(InflightBytes { used: 5, limit: 10 });
        registry.emit(ScrapeTruncated);
        assert_eq!(registry.value(metric::SELF_SPANS_RECEIVED_TOTAL, &["grpc"]), Some(3.0));
        assert_eq!(registry.value(metric::SELF_SPANS_REFUSED_TOTAL, &["http", "queue_full"]), Some(2.0));
        assert_eq!(registry.value(metric::SELF_SPANS_DROPPED_TOTAL, &["shutdown"]), Some(1.0));
        assert_eq!(registry.value(metric::SELF_QUEUE_DEPTH, &["disk"]), Some(2.0));
        assert_eq!(registry.value(metric::SELF_GPU_AVAILABLE, &[]), Some(1.0));
        assert!(registry.render(Format::OpenMetrics).contains("agentrace_build_info"));
    }
}
